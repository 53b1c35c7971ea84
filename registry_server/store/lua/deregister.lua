-- Remove a live instance. An expired one is left to the sweeper, which counts it as an expiry.
-- KEYS: 1 ids  2 services  3 instance hash  4 leases  5 revision  6 status counts  7 events stream
-- ARGV: 1 id  2 name  3 now ms  4 stream max length  5 presented lease token hash ('*': the admin)
-- Returns false, {"forbidden"} for a wrong lease token, or {doc, status, registered_at, hb, exp}
local old = redis.call('HMGET', KEYS[3], 'doc', 'status', 'reg', 'hb', 'exp', 'tok')
if not old[1] or tonumber(old[5]) <= tonumber(ARGV[3]) then
  return false
end
if ARGV[5] ~= '*' and (ARGV[5] == '' or ARGV[5] ~= old[6]) then
  return {'forbidden'}
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
local revision = redis.call('INCR', KEYS[5])
redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[4], '*', 'type', 'deregistered', 'service', ARGV[2],
           'id', ARGV[1], 'rev', revision, 'doc', old[1], 'status', old[2], 'reg', old[3], 'hb', old[4],
           'exp', old[5])
return {old[1], old[2], old[3], old[4], old[5]}
