-- Claim X for a new binding, atomically.
-- KEYS[1] = ml:{X}; KEYS[2..] (one Redis node only) = X's selection sets,
--   whose score for X (its live bindings, a heuristic) follows the claim, and
--   the owner's count (ml:{owner:NAME}), checked against its cap and counted
--   in the same step, so that concurrent binds never overshoot the cap.
-- ARGV: now, cooldown, cap, bid (10 raw bytes), ver, exp36, mode, allow,
--       ext_candidates (comma list or "", each of 9 digits: the first d are used),
--       nparties, then per party: idx, role, token (15 raw bytes),
--       then: the owner's cap when it has none of its own (0 = none),
--       X's extension length when it has none stored (the deployment's),
--       the length this binding wants, the least length it accepts,
--       then (optional) the binding's sealed route copy, written to X's copies
--       (ml:{X}:cp, field bid) with its routes (see maskline.numbers.route_copies).
-- Returns {"ok", ext} or {"unavailable"} / {"full"} / {"busy", party_no} / {"no_extension"}
--   / {"owner_limit", cap} / {"short_extensions"} (X's live extensions are shorter
--   than this binding accepts).
-- Move X's score in its selection sets (KEYS[2..], given on one Redis node
-- only): XX, so a number that is not selectable (locked) never joins them.
local function rescore(delta)
  local member = string.sub(KEYS[1], 5, -2)
  for i = 2, #KEYS do
    if is_selection_key(KEYS[i]) then redis.call("ZADD", KEYS[i], "XX", "INCR", delta, member) end
  end
end
local key = KEYS[1]
local now, cooldown, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local bid, ver, exp36, mode = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local allow, ext_candidates = ARGV[8], ARGV[9]
local nparties = tonumber(ARGV[10])
local tail = 10 + nparties * 3
local owner_cap, default_digits = tonumber(ARGV[tail + 1]) or 0, tonumber(ARGV[tail + 2]) or 4
local want_digits, min_digits = tonumber(ARGV[tail + 3]) or default_digits, tonumber(ARGV[tail + 4]) or 0

if not redis.call("HGET", key, "g") then return {"unavailable"} end
local okey = owner_key()
if okey then
  local limit = tonumber(redis.call("HGET", okey, "c")) or owner_cap
  if limit > 0 and (tonumber(redis.call("HGET", okey, "n")) or 0) >= limit then
    return {"owner_limit", tostring(limit)}
  end
end
if (tonumber(redis.call("HGET", key, "n")) or 0) >= cap then return {"full"} end

local parties = {}
for i = 1, nparties do
  local base = 10 + (i - 1) * 3
  parties[i] = {idx = ARGV[base + 1], role = ARGV[base + 2], token = ARGV[base + 3]}
  if occupied(redis.call("HGET", key, parties[i].idx), now, cooldown) then
    return {"busy", tostring(i)}
  end
end

local ext, digits = "", nil
if mode == "axe" then
  -- Each relay number has one extension length (the Gather collects that many
  -- digits). It changes only while X carries no live extension, so printed
  -- slips keep theirs.
  digits = tonumber(redis.call("HGET", key, "d")) or default_digits
  if (tonumber(redis.call("HGET", key, "e")) or 0) == 0 then
    digits = want_digits
  elseif digits < min_digits then
    return {"short_extensions"}
  end
  for cand in string.gmatch(ext_candidates, "([^,]+)") do
    cand = string.sub(cand, 1, digits)
    if not occupied(redis.call("HGET", key, "x" .. cand), now, cooldown) then
      ext = cand
      break
    end
  end
  if ext == "" then return {"no_extension"} end
end

write_binding(key, {bid = bid, ver = ver, st = "a", exp36 = exp36, mode = mode, ext = ext, allow = allow},
  parties)
local copy = ARGV[tail + 5]
if copy and copy ~= "" then redis.call("HSET", key .. ":cp", bid, copy) end
if mode == "axe" then
  redis.call("HINCRBY", key, "e", 1)
  if tonumber(redis.call("HGET", key, "d")) ~= digits then redis.call("HSET", key, "d", digits) end
end
redis.call("HINCRBY", key, "n", 1)
rescore(1)
owner_count(1)
return {"ok", ext}
