-- End a binding (unbind or expiry): its entries become cool-down tombstones.
-- KEYS[1] = ml:{X}; KEYS[2..] (one Redis node only) = X's selection sets and
--   the owner's count (see common.lua), each following the end.
-- ARGV: bid, ver, end_time, end_time36, mode, ext (or ""), then the parties' idx values.
-- Returns 1 if the binding was live in Redis and is now ended, else 0.
-- Move X's score in its selection sets (KEYS[2..], given on one Redis node
-- only): XX, so a number that is not selectable (locked) never joins them.
local function rescore(delta)
  local member = string.sub(KEYS[1], 5, -2)
  for i = 2, #KEYS do
    if is_selection_key(KEYS[i]) then redis.call("ZADD", KEYS[i], "XX", "INCR", delta, member) end
  end
end
local key = KEYS[1]
local bid, ver, end_time, end36 = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local mode, ext = ARGV[5], ARGV[6]
local was_live = 0

local function finish(field)
  local v = redis.call("HGET", key, field)
  if not v then return end
  local f = route_fields(v)
  if f.bid ~= bid or f.ver > ver then return end
  if f.st == "a" then was_live = 1 end
  f.ver, f.st = ver, "e"
  if f.exp > end_time then f.exp36 = end36 end
  redis.call("HSET", key, field, pack(f))
end

for i = 7, #ARGV do finish(ARGV[i]) end
if ext ~= "" then finish("x" .. ext) end
-- The sealed numbers go with the binding's life (a tombstone routes no one).
redis.call("HDEL", key .. ":cp", bid)
if was_live == 1 then
  redis.call("HINCRBY", key, "n", -1)
  rescore(-1)
  owner_count(-1)
  if mode == "axe" then redis.call("HINCRBY", key, "e", -1) end
end
return was_live
