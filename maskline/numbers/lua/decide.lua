-- Decide where a call or message to X goes (the body of resolve.lua, shared
-- with the webhook step script, which runs it in the same round trip as its
-- de-duplication, lockouts and quota).
-- Returns {"connect", bid, from_role, target_role, target_token, remember, live_field}
--      or {"reject", reason, bid_or_empty}; live_field is the entry whose
--      state says whether the binding is still live (re-checked on a retry).
local function resolve_route(key, now, idx, idxhex, ext)
  if not redis.call("HGET", key, "g") then return {"reject", "unavailable", ""} end

  local function live(f) return f.st == "a" and now < f.exp end

  -- The caller's own route, if it is a party on X.
  local route = nil
  if #idx == 12 then
    local v = redis.call("HGET", key, idx)
    if v then route = route_fields(v) end
  end

  local function party_call(f)
    if not live(f) then return {"reject", "expired", f.bid} end
    if f.token ~= NO_TOKEN then
      return {"connect", f.bid, f.role, f.peer_role, f.token, "", idx}
    end
    -- The bound party of an axe binding calls back its most recent caller.
    local last = redis.call("HGET", key, "l" .. f.bid)
    if not last then return {"reject", "no_recent_caller", f.bid} end
    local sep = string.find(last, "=", 1, true)
    return {"connect", f.bid, f.role, string.sub(last, 1, sep - 1), string.sub(last, sep + 1), "", idx}
  end

  if ext ~= "" then
    local v = redis.call("HGET", key, "x" .. ext)
    if not v then return {"reject", "bad_extension", ""} end
    local f = route_fields(v)
    if not live(f) then return {"reject", "expired", f.bid} end
    if route and route.bid == f.bid then return party_call(route) end
    local allow = redis.call("HGET", key, "a" .. f.bid) or ""
    if allow == "*" then
      return {"connect", f.bid, "caller", f.role, f.token, "remember", "x" .. ext}
    end
    if idxhex ~= "" then
      local at = string.find(allow, idxhex .. "=", 1, true)
      if at then
        local rest = string.sub(allow, at + #idxhex + 1)
        local stop = string.find(rest, ";", 1, true) or (#rest + 1)
        local entry = string.sub(rest, 1, stop - 1)
        local sep = string.find(entry, "=", 1, true)
        local role, token = string.sub(entry, 1, sep - 1), string.sub(entry, sep + 1)
        redis.call("HSET", key, "l" .. f.bid, role .. "=" .. token)
        return {"connect", f.bid, role, f.role, f.token, "", "x" .. ext}
      end
    end
    return {"reject", "stranger", f.bid}
  end

  if route then return party_call(route) end
  if (tonumber(redis.call("HGET", key, "e")) or 0) > 0 then
    return {"reject", "extension_required", ""}
  end
  if (tonumber(redis.call("HGET", key, "n")) or 0) > 0 then
    return {"reject", "stranger", ""}
  end
  return {"reject", "no_binding", ""}
end
