-- Register or re-register one instance, atomically, and record the change in the event stream.
-- KEYS: 1 ids (hash id -> name)  2 services (hash name -> instance count)  3 instance hash
--       4 leases (zset id -> expiry ms)  5 revision  6 status counts (hash status -> n)  7 events stream
-- ARGV: 1 id  2 name  3 document (JSON)  4 status  5 now ms  6 expiry ms  7 lease token hash
--       8 stream max length  9 presented lease token hash ('*': the admin, who needs none)
-- Returns {"conflict", owner}, {"forbidden"} or {"ok", created, replaced_expired, registered_at, revision}
local owner = redis.call('HGET', KEYS[1], ARGV[1])
if owner and owner ~= ARGV[2] then
  return {'conflict', owner}
end
local now = tonumber(ARGV[5])
local created, expired = 1, 0
local kind = 'registered'
local registered_at = ARGV[5]
local old = redis.call('HMGET', KEYS[3], 'doc', 'status', 'reg', 'hb', 'exp', 'tok')
if old[1] and tonumber(old[5]) > now and ARGV[9] ~= '*' and (ARGV[9] == '' or ARGV[9] ~= old[6]) then
  return {'forbidden'}
end
if old[1] then
  redis.call('HINCRBY', KEYS[6], old[2], -1)
  if tonumber(old[5]) <= now then
    expired = 1
  else
    created = 0
    registered_at = old[3]
    if old[1] ~= ARGV[3] then
      kind = 'updated'
    elseif old[2] ~= ARGV[4] then
      kind = 'status_changed'
    else
      kind = nil
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], 'doc', ARGV[3], 'status', ARGV[4], 'reg', registered_at, 'hb', ARGV[5],
           'exp', ARGV[6], 'tok', ARGV[7])
redis.call('HINCRBY', KEYS[6], ARGV[4], 1)
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], redis.call('ZCARD', KEYS[4]))
local revision
if kind then
  revision = redis.call('INCR', KEYS[5])
  if expired == 1 then
    redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[8], '*', 'type', 'expired', 'service', ARGV[2],
               'id', ARGV[1], 'rev', revision, 'doc', old[1], 'status', old[2], 'reg', old[3], 'hb', old[4],
               'exp', old[5])
  end
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[8], '*', 'type', kind, 'service', ARGV[2], 'id', ARGV[1],
             'rev', revision, 'doc', ARGV[3], 'status', ARGV[4], 'reg', registered_at, 'hb', ARGV[5],
             'exp', ARGV[6])
else
  revision = tonumber(redis.call('GET', KEYS[5]) or '0')
end
return {'ok', created, expired, registered_at, revision}
