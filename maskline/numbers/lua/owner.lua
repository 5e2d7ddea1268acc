-- Count one more live binding for an owner unless it is at its cap, at once
-- (Redis Cluster only: on one node the claim script does this itself).
-- KEYS[1] = ml:{owner:NAME} (n = live bindings, c = its own cap)
-- ARGV: the cap when the owner has none of its own (0 = none)
-- Returns -1 when counted, else the cap that refused it.
local limit = tonumber(redis.call("HGET", KEYS[1], "c")) or tonumber(ARGV[1])
if limit > 0 and (tonumber(redis.call("HGET", KEYS[1], "n")) or 0) >= limit then return limit end
redis.call("HINCRBY", KEYS[1], "n", 1)
return -1
