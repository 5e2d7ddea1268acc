-- Candidate relay numbers of one country's selection sets, least loaded first.
-- Not prepended with common.lua: it touches no route hash.
-- KEYS[1] = the country's marker (mls:{CC}:m); KEYS[2..] = sorted sets of that
--           country (same hash tag), whose scores are live bindings per number.
-- ARGV: count, below (scores >= below are at their cap), then one offset per set.
-- Returns {"stale"} when the marker is missing (the sets must be built from
-- SQL first), else {"ok", page of KEYS[2], page of KEYS[3], ...}, each page a
-- flat list of member, score.
if redis.call("EXISTS", KEYS[1]) == 0 then return {"stale"} end
local count, below = tonumber(ARGV[1]), ARGV[2]
local out = {"ok"}
for i = 2, #KEYS do
  out[i] = redis.call("ZRANGEBYSCORE", KEYS[i], "-inf", "(" .. below, "WITHSCORES", "LIMIT",
    tonumber(ARGV[1 + i]), count)
end
return out
