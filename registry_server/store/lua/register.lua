-- Register or re-register one instance, atomically.
-- KEYS: 1 ids (hash id -> name)  2 services (hash name -> instance count)  3 instance hash
--       4 leases (zset id -> expiry ms)  5 revision  6 status counts (hash status -> n)
-- ARGV: 1 id  2 name  3 document (JSON)  4 status  5 now ms  6 expiry ms  7 lease token
-- Returns {"conflict", owner} or {"ok", created, replaced_expired, registered_at, revision}
local owner = redis.call('HGET', KEYS[1], ARGV[1])
if owner and owner ~= ARGV[2] then
  return {'conflict', owner}
end
local now = tonumber(ARGV[5])
local created, expired, changed = 1, 0, true
local registered_at = ARGV[5]
local old = redis.call('HMGET', KEYS[3], 'doc', 'status', 'reg', 'exp')
if old[1] then
  redis.call('HINCRBY', KEYS[6], old[2], -1)
  if tonumber(old[4]) <= now then
    expired = 1
  else
    created = 0
    registered_at = old[3]
    changed = (old[1] ~= ARGV[3]) or (old[2] ~= ARGV[4])
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], 'doc', ARGV[3], 'status', ARGV[4], 'reg', registered_at, 'hb', ARGV[5],
           'exp', ARGV[6], 'tok', ARGV[7])
redis.call('HINCRBY', KEYS[6], ARGV[4], 1)
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], redis.call('ZCARD', KEYS[4]))
local revision
if changed then
  revision = redis.call('INCR', KEYS[5])
else
  revision = tonumber(redis.call('GET', KEYS[5]) or '0')
end
return {'ok', created, expired, registered_at, revision}
