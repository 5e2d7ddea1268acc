-- Give a live binding a new expiry.
-- KEYS[1] = ml:{X}
-- ARGV: bid, ver, now, new_exp36, ext (or ""), then the parties' idx values.
-- Returns the number of entries updated (0: not live in Redis).
local key = KEYS[1]
local bid, ver, now, new_exp36, ext = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
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

for i = 6, #ARGV do bump(ARGV[i]) end
if ext ~= "" then bump("x" .. ext) end
return updated
