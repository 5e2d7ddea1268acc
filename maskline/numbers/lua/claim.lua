-- Claim X for a new binding, atomically.
-- KEYS[1] = ml:{X}; KEYS[2..] (one Redis node only) = X's selection sets,
--   whose score for X (its live bindings, a heuristic) follows the claim.
-- ARGV: now, cooldown, cap, bid (10 raw bytes), ver, exp36, mode, allow,
--       ext_candidates (comma list or ""), nparties, then per party: idx, role, token (15 raw bytes)
-- Returns {"ok", ext} or {"unavailable"} / {"full"} / {"busy", party_no} / {"no_extension"}.
-- Move X's score in its selection sets (KEYS[2..], given on one Redis node
-- only): XX, so a number that is not selectable (locked) never joins them.
local function rescore(delta)
  local member = string.sub(KEYS[1], 5, -2)
  for i = 2, #KEYS do redis.call("ZADD", KEYS[i], "XX", "INCR", delta, member) end
end
local key = KEYS[1]
local now, cooldown, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local bid, ver, exp36, mode = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local allow, ext_candidates = ARGV[8], ARGV[9]
local nparties = tonumber(ARGV[10])

if not redis.call("HGET", key, "g") then return {"unavailable"} end
if (tonumber(redis.call("HGET", key, "n")) or 0) >= cap then return {"full"} end

local parties = {}
for i = 1, nparties do
  local base = 10 + (i - 1) * 3
  parties[i] = {idx = ARGV[base + 1], role = ARGV[base + 2], token = ARGV[base + 3]}
  if occupied(redis.call("HGET", key, parties[i].idx), now, cooldown) then
    return {"busy", tostring(i)}
  end
end

local ext = ""
if mode == "axe" then
  for cand in string.gmatch(ext_candidates, "([^,]+)") do
    if not occupied(redis.call("HGET", key, "x" .. cand), now, cooldown) then
      ext = cand
      break
    end
  end
  if ext == "" then return {"no_extension"} end
end

write_binding(key, {bid = bid, ver = ver, st = "a", exp36 = exp36, mode = mode, ext = ext, allow = allow},
  parties)
if mode == "axe" then redis.call("HINCRBY", key, "e", 1) end
redis.call("HINCRBY", key, "n", 1)
rescore(1)
return {"ok", ext}
