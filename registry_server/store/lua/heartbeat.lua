-- Renew a live lease, optionally changing the status.
-- KEYS: 1 instance hash  2 leases  3 revision  4 status counts
-- ARGV: 1 id  2 now ms  3 expiry ms  4 new status or ''
-- Returns false for an unknown or expired instance, else {doc, status, registered_at, hb, exp}
local old = redis.call('HMGET', KEYS[1], 'doc', 'status', 'reg', 'exp')
if not old[1] or tonumber(old[4]) <= tonumber(ARGV[2]) then
  return false
end
local status = old[2]
if ARGV[4] ~= '' and ARGV[4] ~= status then
  redis.call('HINCRBY', KEYS[4], status, -1)
  redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
  status = ARGV[4]
  redis.call('HSET', KEYS[1], 'status', status, 'hb', ARGV[2], 'exp', ARGV[3])
  redis.call('INCR', KEYS[3])
else
  redis.call('HSET', KEYS[1], 'hb', ARGV[2], 'exp', ARGV[3])
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return {old[1], status, old[3], ARGV[2], ARGV[3]}
