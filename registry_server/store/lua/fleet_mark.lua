-- The fleet's liveness mark: every serving replica moves it to its clock with each sweep. A mark older
-- than the gap means no replica served since then (the whole fleet was down or stalled): the one caller
-- that moves it on from that stale value is told so, and extends the leases; a caller arriving after it
-- finds a fresh mark. Compare and set in one step: exactly one replica extends, however many restart.
-- KEYS: 1 mark
-- ARGV: 1 now ms  2 gap ms
-- Returns the stale mark's ms, or false (no mark yet, or a fresh one)
local now = tonumber(ARGV[1])
local prev = redis.call('GET', KEYS[1])
if prev and tonumber(prev) >= now then
  return false  -- another replica's clock is ahead: keep its mark
end
redis.call('SET', KEYS[1], ARGV[1])
if prev and now - tonumber(prev) > tonumber(ARGV[2]) then
  return prev
end
return false
