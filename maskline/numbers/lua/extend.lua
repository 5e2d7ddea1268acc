-- Change a live binding: a new expiry and, in axe mode, optionally a new allow-list.
-- KEYS[1] = ml:{X}
-- ARGV: bid, ver, now, new_exp36, ext (or ""), set_allow ("1" or "0"), allow,
--       then the parties' idx values.
-- Returns the number of entries updated (0: not live in Redis; nothing changed).
local key = KEYS[1]
local bid, ver, now, new_exp36, ext = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local set_allow, allow = ARGV[6] == "1", ARGV[7]
local updated = 0

local function bump(field)
  local v = redis.call("HGET", key, field)
  if not v then return end
  local f = route_fields(v)
  if f.bid ~= bid or f.ver > ver or f.st ~= "a" or now >= f.exp then return end
  f.ver, f.exp36 = ver, new_exp36
  redis.call("HSET", key, field, pack(f))
  updated = updated + 1
end

for i = 8, #ARGV do bump(ARGV[i]) end
if ext ~= "" then bump("x" .. ext) end
if set_allow and ext ~= "" and updated > 0 then
  redis.call("HSET", key, "a" .. bid, allow)
end
return updated
