-- Record one health check of a live instance, atomically; a transition (to critical, or back to passing)
-- is a change: the revision moves and a status_changed event carries the instance with its new health.
-- KEYS: 1 instance hash  2 leases  3 revision  4 status counts  5 events stream
-- ARGV: 1 id  2 name  3 '1' passed, '0' failed  4 output  5 now ms  6 failures in a row that make it critical
--       7 critical for this long (ms) deregisters it (0: never)  8 stream max length  9 change channel
-- Returns false for an unknown or expired instance, else {doc, status, registered_at, hb, exp, health
-- status, checked at, output, transition ('', 'critical' or 'passing'), 1 if deregistered else 0}
local h = redis.call('HMGET', KEYS[1], 'doc', 'status', 'reg', 'hb', 'exp', 'hs', 'rep', 'hcs')
local now = tonumber(ARGV[5])
if not h[1] or tonumber(h[5]) <= now then
  return false
end
local status, health, transition = h[2], h[6] or 'unchecked', ''
local new_status = status
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'hf', 0)
  if health == 'critical' then
    transition = 'passing'
    redis.call('HDEL', KEYS[1], 'rep', 'hcs')
    new_status = h[7] or 'UP'
  end
  health = 'passing'
else
  local failures = redis.call('HINCRBY', KEYS[1], 'hf', 1)
  if health ~= 'critical' and failures >= tonumber(ARGV[6]) then
    transition, health = 'critical', 'critical'
    redis.call('HSET', KEYS[1], 'rep', status, 'hcs', ARGV[5])
    new_status = 'DOWN'
  elseif health == 'critical' and tonumber(ARGV[7]) > 0 and now - tonumber(h[8] or now) >= tonumber(ARGV[7]) then
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[2], ARGV[1])
    redis.call('HINCRBY', KEYS[4], status, -1)
    local revision = redis.call('INCR', KEYS[3])
    emit(KEYS[5], ARGV[8], ARGV[9], 'deregistered', ARGV[2], ARGV[1], revision, h[1], status, h[3], h[4], h[5],
         {'critical', ARGV[5], ARGV[4]})
    return {h[1], status, h[3], h[4], h[5], 'critical', ARGV[5], ARGV[4], '', 1}
  end
end
redis.call('HSET', KEYS[1], 'hs', health, 'hat', ARGV[5], 'hout', ARGV[4])
if new_status ~= status then
  redis.call('HINCRBY', KEYS[4], status, -1)
  redis.call('HINCRBY', KEYS[4], new_status, 1)
  status = new_status
  redis.call('HSET', KEYS[1], 'status', status)
end
if transition ~= '' then  -- a change even when the status shown stays (an instance that reported DOWN itself)
  local revision = redis.call('INCR', KEYS[3])
  emit(KEYS[5], ARGV[8], ARGV[9], 'status_changed', ARGV[2], ARGV[1], revision, h[1], status, h[3], h[4], h[5],
       {health, ARGV[5], ARGV[4]})
end
return {h[1], status, h[3], h[4], h[5], health, ARGV[5], ARGV[4], transition, 0}
