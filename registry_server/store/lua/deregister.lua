-- Remove a live instance. An expired one is left to the sweeper, which counts it as an expiry.
-- KEYS: 1 ids  2 services  3 instance hash  4 leases  5 revision  6 status counts
-- ARGV: 1 id  2 name  3 now ms
-- Returns false, or {doc, status, registered_at, hb, exp}
local old = redis.call('HMGET', KEYS[3], 'doc', 'status', 'reg', 'hb', 'exp')
if not old[1] or tonumber(old[5]) <= tonumber(ARGV[3]) then
  return false
end
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[6], old[2], -1)
local n = redis.call('ZCARD', KEYS[4])
if n == 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
else
  redis.call('HSET', KEYS[2], ARGV[2], n)
end
redis.call('INCR', KEYS[5])
return old
