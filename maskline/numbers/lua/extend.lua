-- Give a live binding a new expiry.
-- KEYS[1] = ml:{X}
-- ARGV: bid, ver, now, new_exp, ext (or ""), then the parties' raw idx values.
-- Returns the number of entries updated (0: not live in Redis).
local key = KEYS[1]
local bid, ver, now, new_exp, ext = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local updated = 0

local function bump(field)
  local v = redis.call("HGET", key, field)
  if not v then return end
  local f = route_fields(v)
  if f.bid ~= bid or f.ver > ver or f.st ~= "a" or now >= f.exp then return end
  local p = split(v)
  p[2] = tostring(ver)
  p[4] = new_exp
  redis.call("HSET", key, field, table.concat(p, "|"))
  updated = updated + 1
end

for i = 6, #ARGV do bump("r:" .. ARGV[i]) end
if ext ~= "" then bump("x:" .. ext) end
return updated
