-- Hand the health checks due by now to this caller alone: each is held (pushed to now + hold) until the
-- caller reschedules it, or, should the caller die, until the hold ends and another replica claims it.
-- KEYS: 1 the schedule (sorted set, '<name>/<id>' scored by due ms)
-- ARGV: 1 now ms  2 hold ms  3 limit, then pairs of member and next due ms: the caller's checks done since
--       its last claim, rescheduled first (those still scheduled: XX), in the same round trip
-- Returns the members claimed
for i = 4, #ARGV - 1, 2 do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[i + 1], ARGV[i])
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local held = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], held, member)
end
return due
