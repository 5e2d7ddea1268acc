-- Store a webhook step's decision unless a concurrent retry stored one first.
-- One round trip instead of MULTI/HSETNX/HSETNX/HSET/EXPIRE/HGET/EXEC.
-- KEYS[1] = ml:wh:{SID}
-- ARGV: step, decision (JSON), now (epoch), ttl (seconds),
--       binding id, from role, target role (all three "" unless a connect)
-- Returns the stored decision: this one, or the one that won.
local key, step = KEYS[1], ARGV[1]
local won = redis.call("HSETNX", key, step, ARGV[2]) == 1
redis.call("HSETNX", key, "t", ARGV[3])
if won and ARGV[5] ~= "" then
  -- Status callbacks store the interaction of the connect that was acted on.
  redis.call("HSET", key, "b", ARGV[5], "fr", ARGV[6], "tr", ARGV[7])
end
redis.call("EXPIRE", key, ARGV[4])
return redis.call("HGET", key, step)
