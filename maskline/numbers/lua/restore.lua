-- Rebuild X's entries from SQL (idempotent). Sets the generation marker and
-- recomputes the live counters from what ends up live.
-- KEYS[1] = ml:{X}
-- ARGV: generation, now, nbindings, then per binding:
--   bid, ver, st, exp36, mode, ext, allow, last, nparties, then per party: idx, role, token
-- An entry is written unless Redis holds a newer version of the same binding
-- (an unbind racing the rebuild wins) or a different binding that is live.
-- Returns the number of bindings written.
local key = KEYS[1]
local generation, now, nbindings = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local pos, written = 4, 0

local function may_write(field, bid, ver)
  local v = redis.call("HGET", key, field)
  if not v then return true end
  local f = route_fields(v)
  if f.bid == bid then return f.ver <= ver end
  return not (f.st == "a" and now < f.exp)
end

for _ = 1, nbindings do
  local bid, ver, st, exp36, mode = ARGV[pos], tonumber(ARGV[pos + 1]), ARGV[pos + 2], ARGV[pos + 3], ARGV[pos + 4]
  local ext, allow, last, nparties = ARGV[pos + 5], ARGV[pos + 6], ARGV[pos + 7], tonumber(ARGV[pos + 8])
  pos = pos + 9
  local parties = {}
  for i = 1, nparties do
    parties[i] = {idx = ARGV[pos], role = ARGV[pos + 1], token = ARGV[pos + 2]}
    pos = pos + 3
  end
  local ok = true
  for i = 1, nparties do
    if not may_write(parties[i].idx, bid, ver) then ok = false end
  end
  if ext ~= "" and not may_write("x" .. ext, bid, ver) then ok = false end
  if ok then
    write_binding(key, {bid = bid, ver = ver, st = st, exp36 = exp36, mode = mode, ext = ext, allow = allow},
      parties)
    if mode == "axe" and last ~= "" and not redis.call("HGET", key, "l" .. bid) then
      redis.call("HSET", key, "l" .. bid, last)
    end
    written = written + 1
  end
end

-- Recount what is live now, whoever wrote it.
local n, e, d = 0, 0, nil
local fields = redis.call("HGETALL", key)
local seen = {}
for i = 1, #fields, 2 do
  if #fields[i] < 12 and string.sub(fields[i], 1, 1) == "x" then
    -- X's extension length is that of its live extensions (see claim.lua).
    local f = route_fields(fields[i + 1])
    if f.st == "a" and now < f.exp then d = #fields[i] - 1 end
  elseif #fields[i] == 12 then
    local f = route_fields(fields[i + 1])
    if f.st == "a" and now < f.exp and not seen[f.bid] then
      seen[f.bid] = true
      n = n + 1
      if f.token == NO_TOKEN then e = e + 1 end
    end
  end
end
redis.call("HSET", key, "g", generation, "n", n, "e", e)
if d then redis.call("HSET", key, "d", d) end
return written
