-- Settle the decision record of a call or message whose end SQL now holds.
-- Prepended: numbers' common.lua and decide.lua (route_fields).
-- KEYS[1] = ml:{X}:c:<sid>, KEYS[2] = ml:{X}
-- ARGV: ended TTL, now
-- While a binding this record connected is still live, a replay would find
-- its route and its route copy (no SQL on a connect): the record shrinks to
-- its "done" mark and keeps living until the binding's expiry and an hour
-- (as step.lua set it). Otherwise it lives the ended TTL. Never lengthened.
local rec, key = KEYS[1], KEYS[2]
local ended_ttl, now = tonumber(ARGV[1]), tonumber(ARGV[2])
local done = redis.call("HGET", rec, "done")
if not done then return 0 end
local fields = redis.call("HGETALL", rec)
local left = 0
for i = 1, #fields, 2 do
  local name = fields[i]
  if string.sub(name, 1, 3) == "lf:" then
    local v = redis.call("HGET", key, fields[i + 1])
    local bid = redis.call("HGET", rec, "lb:" .. string.sub(name, 4))
    if v then
      local f = route_fields(v)
      if f.bid == bid and f.st == "a" and now < f.exp then left = math.max(left, f.exp - now + 3600) end
    end
  end
end
local ttl = redis.call("TTL", rec)
if left > ended_ttl then
  redis.call("DEL", rec)
  redis.call("HSET", rec, "done", done)
  if ttl > 0 then redis.call("EXPIRE", rec, math.min(ttl, left)) else redis.call("EXPIRE", rec, left) end
  return 1
end
if ttl < 0 or ttl > ended_ttl then redis.call("EXPIRE", rec, ended_ttl) end
return 1
