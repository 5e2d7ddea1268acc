-- Replace one party of a live axb binding on X, in place and atomically:
-- the new party's route takes the replaced one's entry (same binding, same
-- peer), the peer's route now points at the new party, and the replaced
-- party's route is gone (it reaches no one through X from now on).
-- KEYS[1] = ml:{X}
-- ARGV: bid, ver, now, cooldown, old_idx, new_idx, new_token (15 raw bytes), peer_idx
-- Returns {"ok"} / {"unavailable"} / {"not_live"} / {"busy"} (the new party
-- is on X already, or cooling down there). Nothing changes unless "ok".
local key = KEYS[1]
local bid, ver, now, cooldown = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local old_idx, new_idx, new_token, peer_idx = ARGV[5], ARGV[6], ARGV[7], ARGV[8]

if not redis.call("HGET", key, "g") then return {"unavailable"} end
local old_v, peer_v = redis.call("HGET", key, old_idx), redis.call("HGET", key, peer_idx)
if not old_v or not peer_v then return {"not_live"} end
local old, peer = route_fields(old_v), route_fields(peer_v)
if old.bid ~= bid or peer.bid ~= bid or old.st ~= "a" or peer.st ~= "a" or now >= old.exp
  or old.ver > ver or peer.ver > ver then
  return {"not_live"}
end
if new_idx ~= old_idx and occupied(redis.call("HGET", key, new_idx), now, cooldown) then
  return {"busy"}
end
-- Every other field of the entries is kept as it is (pack writes them all).
old.ver = ver
peer.ver, peer.token = ver, new_token
-- The route copy names the replaced party's number: gone (connects read SQL).
redis.call("HDEL", key, old_idx)
redis.call("HDEL", key .. ":cp", bid)
redis.call("HSET", key, new_idx, pack(old), peer_idx, pack(peer))
return {"ok"}
