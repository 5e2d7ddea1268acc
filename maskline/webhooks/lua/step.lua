-- One webhook step (a call, the extension keyed after it, or a text) in one
-- round trip: de-duplication, routing, lockouts, quota and the decision
-- record, all on the relay number's slot. Prepended: numbers' common.lua and
-- decide.lua (resolve_route).
-- KEYS[1] = ml:{X}            the relay number's routes
-- KEYS[2] = ml:{X}:c:<sid>    this call's or message's decision record
-- ARGV: 1 step ("voice:1", "ext:<n>", "sms:1"), 2 now, 3 caller idx (12 bytes or ""),
--       4 caller idx hex (or ""), 5 extension keyed ("" on a first step; "x" if nothing usable),
--       6 quota kind ("call" / "sms"), 7 this attempt
-- LIMITS (a table of constants from the settings, prepended by steps.py, so
-- that each call sends only what changes per request): calls per hour, per
-- day, texts per hour, per day, record TTL, attempts allowed, wrong
-- extensions per caller, its window, its lockout, wrong extensions per
-- number, its window, its lockdown, extension digits when X has no length of its own
-- Returns one string, the fields joined by "\n" (one reply to read, not seven):
--         outcome, decision JSON, remember ("1"/""), lockdown count ("" unless one started now),
--         extension digits, "1" if anyone has opted out of texts from X,
--         "1" if this step keyed a wrong extension, then on a connect the binding's sealed
--         route copy if it has one (binary, so last: see maskline.numbers.route_copies);
--         outcome is "new", "retry" (a stored decision still true),
--         "stale" (a stored connect whose binding is no longer live) or "done" (the call is over).
local key, rec = KEYS[1], KEYS[2]
local step, now = ARGV[1], tonumber(ARGV[2])
local idx, idxhex, ext, kind = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local attempt = tonumber(ARGV[7])
local per_hour, per_day = LIMITS[1], LIMITS[2]
if kind == "sms" then per_hour, per_day = LIMITS[3], LIMITS[4] end
local record_ttl, attempts = LIMITS[5], LIMITS[6]
local caller_failures, caller_window, caller_lockout = LIMITS[7], LIMITS[8], LIMITS[9]
local number_failures, number_window, number_lockout = LIMITS[10], LIMITS[11], LIMITS[12]
-- Quota counters live to the end of their window, and a minute more (clock skew).
local hour_ttl, day_ttl = 3600 - now % 3600 + 60, 86400 - now % 86400 + 60
local digits = redis.call("HGET", key, "d") or tostring(LIMITS[13])
-- Texts only: whether X's opt-out set has anyone (the rare case pays a second look).
local optouts = ""
local wrong = ""
if kind == "sms" and redis.call("EXISTS", key .. ":optout") == 1 then optouts = "1" end

local B32 = "abcdefghijklmnopqrstuvwxyz234567"
local function b32(raw)
  local out, buffer, bits = {}, 0, 0
  for i = 1, #raw do
    buffer = buffer * 256 + string.byte(raw, i)
    bits = bits + 8
    while bits >= 5 do
      bits = bits - 5
      local v = math.floor(buffer / 2 ^ bits) % 32
      out[#out + 1] = string.sub(B32, v + 1, v + 1)
    end
    buffer = buffer % 2 ^ bits
  end
  return table.concat(out)
end
local function token_text(t)
  if #t == 15 then return "pn_" .. b32(t) end
  return t
end

-- A retry or a replay: the stored decision, if it is still true.
if redis.call("HEXISTS", rec, "done") == 1 then return {"done", "", "", "", digits, optouts, wrong} end
local stored = redis.call("HGET", rec, step)
if stored then
  local live_field = redis.call("HGET", rec, "lf:" .. step)
  if live_field then
    -- A connect goes out again only while its binding is still live.
    local v = redis.call("HGET", key, live_field)
    if not v then return {"stale", stored, "", "", digits, optouts, wrong} end
    local f = route_fields(v)
    if f.bid ~= redis.call("HGET", rec, "lb:" .. step) or f.st ~= "a" or now >= f.exp then
      return {"stale", stored, "", "", digits, optouts, wrong}
    end
    return {"retry", stored, "", "", digits, optouts, wrong, redis.call("HGET", key .. ":cp", f.bid) or ""}
  end
  return {"retry", stored, "", "", digits, optouts, wrong}
end

local function save(decision, live_field, bid)
  local text = cjson.encode(decision)
  redis.call("HSET", rec, step, text)
  redis.call("HSETNX", rec, "t", now)
  if live_field then
    redis.call("HSET", rec, "lf:" .. step, live_field, "lb:" .. step, bid,
      "b", decision.binding_id, "fr", decision.from_role, "tr", decision.target_role)
  end
  redis.call("EXPIRE", rec, record_ttl)
  return text
end

local function reject(reason, bid_text, lockdown)
  local d = {action = "reject", reason = reason}
  if bid_text and bid_text ~= "" then d.binding_id = bid_text end
  if reason == "unavailable" then
    -- No generation marker: nothing is stored, so a retry decides again
    -- once the routes are rebuilt.
    return {"new", cjson.encode(d), "", "", digits, optouts, wrong}
  end
  return {"new", save(d), "", lockdown or "", digits, optouts, wrong}
end

local function gather(next_attempt)
  return {"new", save({action = "gather", attempt = next_attempt, digits = tonumber(digits)}), "", "", digits, optouts, wrong}
end

local function bid_of(raw)
  if raw == nil or raw == "" then return "" end
  return "bd_" .. b32(raw)
end

local who = idxhex ~= "" and idxhex or "anonymous"
local caller_key = key .. ":xf:" .. who
local function caller_locked()
  return (tonumber(redis.call("GET", caller_key)) or 0) >= caller_failures
end
local number_locked = redis.call("EXISTS", key .. ":xl") == 1

-- Callers who reached an open-extension binding before: kept (6 bytes of
-- their index each, the newest 8) so that a lockdown never stops them.
local function known_caller(bid)
  if #idx ~= 12 then return false end
  local seen = redis.call("HGET", key, "k" .. bid) or ""
  local mine = string.sub(idx, 1, 6)
  for i = 1, #seen, 6 do
    if string.sub(seen, i, i + 5) == mine then return true end
  end
  return false
end
local function remember_known(bid)
  if #idx ~= 12 or known_caller(bid) then return end
  local seen = (redis.call("HGET", key, "k" .. bid) or "") .. string.sub(idx, 1, 6)
  if #seen > 48 then seen = string.sub(seen, #seen - 47) end
  redis.call("HSET", key, "k" .. bid, seen)
end

local function connect(r)
  local bid_text = bid_of(r[2])
  local counters = key .. ":q:" .. bid_text .. ":" .. kind
  local hour_key = counters .. ":h" .. math.floor(now / 3600)
  local day_key = counters .. ":d" .. math.floor(now / 86400)
  -- A counter's life is set when its window's first use creates it (the end
  -- of the window, the same for every use in it): one command less per counter.
  local hour = redis.call("INCR", hour_key)
  if hour == 1 then redis.call("EXPIRE", hour_key, hour_ttl) end
  local day = redis.call("INCR", day_key)
  if day == 1 then redis.call("EXPIRE", day_key, day_ttl) end
  if hour > per_hour or day > per_day then return reject("quota", bid_text) end
  if r[6] == "remember" then remember_known(r[2]) end
  local d = {action = "connect", binding_id = bid_text, from_role = r[3], target_role = r[4],
             target_token = token_text(r[5])}
  local text = save(d, r[7], r[2])
  -- The binding's connects under way (sid -> first seen), so that the faces
  -- list an interaction from its first webhook (SQL has it from its first
  -- status callback). Entries past a record's life are dropped.
  local live_index = key .. ":lv:" .. bid_text
  redis.call("ZADD", live_index, now, string.sub(rec, #key + 4))
  redis.call("ZREMRANGEBYSCORE", live_index, "-inf", now - record_ttl)
  redis.call("EXPIRE", live_index, record_ttl)
  -- The record refuses replays: it lives at least as long as the binding may.
  local live = redis.call("HGET", key, r[7])
  if live then
    local left = route_fields(live).exp - now + 3600
    if left > record_ttl then redis.call("EXPIRE", rec, left) end
  end
  return {"new", text, r[6] == "remember" and "1" or "", "", digits, optouts, wrong,
          redis.call("HGET", key .. ":cp", r[2]) or ""}
end

if ext == "" then
  local r = resolve_route(key, now, idx, idxhex, "")
  if r[1] == "connect" then return connect(r) end
  if r[2] == "extension_required" and kind == "call" then
    if caller_locked() then return reject("locked_out") end
    return gather(1)
  end
  return reject(r[2], bid_of(r[3]))
end

if caller_locked() then return reject("locked_out") end
local r = resolve_route(key, now, idx, idxhex, ext)
if r[1] == "connect" then
  if number_locked and r[6] == "remember" and not known_caller(r[2]) then
    -- An open extension under lockdown: only callers it already knows.
    return reject("locked_down", bid_of(r[2]))
  end
  return connect(r)
end
local reason = r[2]
if reason == "bad_extension" or reason == "stranger" or reason == "expired" then
  -- A wrong extension: counted against this caller and against the number.
  wrong = "1"
  redis.call("SET", caller_key, 0, "EX", caller_window, "NX")
  local mine = redis.call("INCR", caller_key)
  local now_locked_out = mine >= caller_failures
  if now_locked_out then redis.call("EXPIRE", caller_key, caller_lockout) end
  local window_key = key .. ":xw"
  redis.call("SET", window_key, 0, "EX", number_window, "NX")
  local on_number = redis.call("INCR", window_key)
  local started = ""
  if not number_locked and on_number > number_failures then
    redis.call("SET", key .. ":xl", on_number, "EX", number_lockout)
    number_locked = true
    started = tostring(on_number)
  end
  if number_locked then return reject("locked_down", bid_of(r[3]), started) end
  if now_locked_out then return reject("locked_out", bid_of(r[3])) end
  if attempt < attempts then return gather(attempt + 1) end
end
return reject(reason, bid_of(r[3]))
