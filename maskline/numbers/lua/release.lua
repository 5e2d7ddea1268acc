-- Remove a binding's entries entirely: a claim whose SQL write failed, an
-- orphan claim, or a tombstone whose cool-down is over.
-- KEYS[1] = ml:{X}; KEYS[2..] (one Redis node only) = X's selection sets and
--   the owner's count (see common.lua), each following the release.
-- ARGV: bid, ext (or ""), then the parties' idx values.
-- Returns the number of fields removed.
-- Move X's score in its selection sets (KEYS[2..], given on one Redis node
-- only): XX, so a number that is not selectable (locked) never joins them.
local function rescore(delta)
  local member = string.sub(KEYS[1], 5, -2)
  for i = 2, #KEYS do
    if is_selection_key(KEYS[i]) then redis.call("ZADD", KEYS[i], "XX", "INCR", delta, member) end
  end
end
local key = KEYS[1]
local bid, ext = ARGV[1], ARGV[2]
local removed, was_live, was_axe = 0, false, false

local function drop(field)
  local v = redis.call("HGET", key, field)
  if not v then return end
  local f = route_fields(v)
  if f.bid ~= bid then return end
  if f.st == "a" then was_live = true end
  removed = removed + redis.call("HDEL", key, field)
end

for i = 3, #ARGV do drop(ARGV[i]) end
if ext ~= "" then drop("x" .. ext); was_axe = true end
removed = removed + redis.call("HDEL", key, "a" .. bid, "l" .. bid, "k" .. bid)
redis.call("HDEL", key .. ":cp", bid)  -- its sealed route copy (route_copies.py)
if was_live then
  redis.call("HINCRBY", key, "n", -1)
  rescore(-1)
  owner_count(-1)
  if was_axe then redis.call("HINCRBY", key, "e", -1) end
end
return removed
