-- Count one use of a binding against its hourly and daily quota.
-- KEYS[1], KEYS[2] = ml:{X}:q:<binding>:<kind>:h<hour> and ...:d<day> (one slot: {X})
-- ARGV: hour counter TTL, day counter TTL (seconds)
-- Returns {uses this hour, uses this day}, this one included.
local hour = redis.call("INCR", KEYS[1])
redis.call("EXPIRE", KEYS[1], ARGV[1])
local day = redis.call("INCR", KEYS[2])
redis.call("EXPIRE", KEYS[2], ARGV[2])
return {hour, day}
