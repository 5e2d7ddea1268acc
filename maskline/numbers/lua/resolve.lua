-- Decide where a call or message to X goes. One round trip.
-- KEYS[1] = ml:{X}
-- ARGV: now, caller idx (12 bytes, or "" if the caller is unidentifiable),
--       caller idx as hex (for allow-lists, or ""), extension (or "")
-- The decision itself is resolve_route (decide.lua).
return resolve_route(KEYS[1], tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4])
