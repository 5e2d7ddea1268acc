-- Shared helpers, prepended to every maskline routing script.
-- One hash per relay number X, key "ml:{X}" (all keys of a call share X's slot):
--   g            generation marker; absent = Redis lost its data (fail closed)
--   n / e        live bindings / live axe bindings on X
--   r:<idx12>    route of a party (raw 12-byte blind index):
--                "bid|ver|st|exp|role|peer_role|peer_token"   (axe: no peer)
--   x:<ext>      extension: "bid|ver|st|exp|role|token" of the bound party
--   a:<bid>      allow-list of an axe binding: "*" or "<idxhex>=<role>=<token>;..."
--   l:<bid>      most recent allowed caller: "<role>=<token>"
-- st is "a" (active) or "e" (ended). An entry is dead once now >= exp,
-- whatever st says; ended entries stay as cool-down tombstones until the
-- sweeper purges them.

local function split(s)
  local out = {}
  for part in string.gmatch(s .. "|", "([^|]*)|") do out[#out + 1] = part end
  return out
end

local function route_fields(v)
  local p = split(v)
  return {bid = p[1], ver = tonumber(p[2]), st = p[3], exp = tonumber(p[4]),
          role = p[5], peer_role = p[6], peer_token = p[7], token = p[6]}
end

-- Occupied: live, or ended less than `cooldown` seconds ago.
local function occupied(v, now, cooldown)
  if not v then return false end
  local f = route_fields(v)
  return now < f.exp + cooldown
end
