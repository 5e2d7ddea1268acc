-- Write or swap route copies (see maskline.numbers.route_copies).
-- KEYS[1] = ml:{X}; its copies are ml:{X}:cp (same slot), field bid.
-- ARGV: groups of four: bid (10 raw bytes), idx, copy, expected.
--   expected "": write the copy if the route at idx is this binding's
--     and active (a binding that ended meanwhile gets none);
--   else: compare-and-set: only if the copy is still expected, set it to
--     copy ("" deletes it).
-- Returns the number of copies written, swapped or deleted.
local key, done = KEYS[1], 0
local copies = key .. ":cp"
for i = 1, #ARGV, 4 do
  local bid, idx, copy, expected = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if expected == "" then
    local v = redis.call("HGET", key, idx)
    if v then
      local f = route_fields(v)
      if f.bid == bid and f.st == "a" then
        redis.call("HSET", copies, bid, copy)
        done = done + 1
      end
    end
  elseif redis.call("HGET", copies, bid) == expected then
    if copy == "" then redis.call("HDEL", copies, bid) else redis.call("HSET", copies, bid, copy) end
    done = done + 1
  end
end
return done
