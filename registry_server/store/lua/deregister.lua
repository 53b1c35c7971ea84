-- Remove a live instance. An expired one is left to the sweeper, which counts it as an expiry.
-- KEYS: 1 instance hash  2 leases  3 revision  4 status counts  5 events stream
-- ARGV: 1 id  2 name  3 now ms  4 stream max length  5 presented lease token hash ('*': the admin)
--       6 change channel
-- Returns false, {"forbidden"} for a wrong lease token, or {doc, status, registered_at, hb, exp, instances
-- left (counting those whose lease ran out unswept)}
local old = redis.call('HMGET', KEYS[1], 'doc', 'status', 'reg', 'hb', 'exp', 'tok', 'hs', 'hat', 'hout')
if not old[1] or tonumber(old[5]) <= tonumber(ARGV[3]) then
  return false
end
if ARGV[5] ~= '*' and (ARGV[5] == '' or ARGV[5] ~= old[6]) then
  return {'forbidden'}
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[4], old[2], -1)
local revision = redis.call('INCR', KEYS[3])
emit(KEYS[5], ARGV[4], ARGV[6], 'deregistered', ARGV[2], ARGV[1], revision, old[1], old[2], old[3], old[4], old[5],
     {old[7], old[8], old[9]})
return {old[1], old[2], old[3], old[4], old[5], redis.call('ZCARD', KEYS[2])}
