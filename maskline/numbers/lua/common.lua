-- Shared helpers, prepended to every maskline routing script.
-- One hash per relay number X, key "ml:{X}" (every key of a call is on X's slot).
-- Fields, told apart by length so routes need no prefix:
--   g / n / e      generation marker (absent = Redis lost its data: fail closed) /
--                  live bindings on X / live axe bindings on X
--   d              X's extension length (absent: the deployment's MASKLINE_EXTENSION_DIGITS);
--                  set by a claim while X has no live extension (see claim.lua)
--   <idx>          (exactly 12 bytes) route of a party, keyed by its truncated blind index
--   x<ext>         extension entry of an axe binding (at most 9 bytes)
--   a<bid>, l<bid> (11 bytes) allow-list / most recent allowed caller of an axe binding
-- Route and extension values are packed (the layout that keeps a binding near
-- 200 bytes of Redis memory):
--   bid (10 raw bytes) .. token (15 raw bytes) .. "ver|st|exp36|role|peer_role"
-- where token is the peer's vault token in a route (15 zero bytes for an axe
-- bound party, which has no fixed peer) and the bound party's in an extension
-- entry; st is "a" (active) or "e" (ended); exp36 is the expiry in base 36.
-- An entry is dead once now >= exp, whatever st says; ended entries stay as
-- cool-down tombstones until the sweeper purges them.
-- allow: "*" or "<idxhex>=<role>=<token>;..."; last caller: "<role>=<token>".
-- Beside it, "ml:{X}:cp" (same slot): bid -> sealed route copy of a live axb
-- binding (numbers/route_copies.py); a hash of its own, so that both stay
-- listpacks with a relay number's 200 bindings.

local NO_TOKEN = string.rep("\0", 15)

-- Keys after KEYS[1] (one Redis node only; a cluster keeps them on their own
-- slots and moves them in a call of their own): X's selection sets ("mls:")
-- and the owner's count of live bindings ("ml:{owner:NAME}", a hash: n = live
-- bindings, c = the owner's own cap, absent = the deployment's).
local function is_selection_key(k) return string.sub(k, 1, 4) == "mls:" end
local function owner_key()
  for i = 2, #KEYS do
    -- ml:{owner:NAME} (see maskline.numbers.owner_limits.owner_key)
    if string.find(KEYS[i], "{owner:", 1, true) == 4 then return KEYS[i] end
  end
  return nil
end
-- One live binding more (1) or fewer (-1) for the owner whose key was given.
local function owner_count(delta)
  local k = owner_key()
  if k then redis.call("HINCRBY", k, "n", delta) end
end

local function split(s)
  local out = {}
  for part in string.gmatch(s .. "|", "([^|]*)|") do out[#out + 1] = part end
  return out
end

local function route_fields(v)
  local p = split(string.sub(v, 26))
  return {bid = string.sub(v, 1, 10), token = string.sub(v, 11, 25), ver = tonumber(p[1]),
          st = p[2], exp = tonumber(p[3], 36), exp36 = p[3], role = p[4], peer_role = p[5]}
end

local function pack(f)
  return f.bid .. f.token .. f.ver .. "|" .. f.st .. "|" .. f.exp36 .. "|" .. f.role .. "|" .. f.peer_role
end

-- Write a binding's entries: the routes of its parties (each pointing at the
-- other in axb; the bound party alone in axe) and, in axe, the extension
-- entry and the allow-list. `b` holds bid, ver, st, exp36, mode, ext, allow.
local function write_binding(key, b, parties)
  local function entry(token, role, peer_role)
    return pack({bid = b.bid, token = token, ver = b.ver, st = b.st, exp36 = b.exp36,
                 role = role, peer_role = peer_role})
  end
  if b.mode == "axb" then
    local x, y = parties[1], parties[2]
    redis.call("HSET", key, x.idx, entry(y.token, x.role, y.role), y.idx, entry(x.token, y.role, x.role))
  else
    local p = parties[1]
    redis.call("HSET", key, p.idx, entry(NO_TOKEN, p.role, ""), "x" .. b.ext, entry(p.token, p.role, ""),
      "a" .. b.bid, b.allow)
  end
end

-- Occupied: live, or ended less than `cooldown` seconds ago.
local function occupied(v, now, cooldown)
  if not v then return false end
  return now < route_fields(v).exp + cooldown
end
