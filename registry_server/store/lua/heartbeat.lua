-- Renew a live lease, optionally changing the status (a change is recorded).
-- KEYS: 1 instance hash  2 leases  3 revision  4 status counts  5 events stream
-- ARGV: 1 id  2 now ms  3 expiry ms  4 new status or ''  5 service name  6 stream max length
--       7 presented lease token hash ('*': the admin)  8 change channel
-- Returns false for an unknown or expired instance, {"forbidden"} for a wrong lease token,
-- else {doc, status, registered_at, hb, exp, 1 if the status changed else 0, health status, checked at, output}
-- While its checks find it critical, the status it asks for is kept for when a check passes.
-- A renewal never shortens a lease: a heartbeat that waited in the server must not undo a longer lease
-- given since (to a heartbeat told to come back later).
local old = redis.call('HMGET', KEYS[1], 'doc', 'status', 'reg', 'exp', 'tok', 'hs', 'hat', 'hout')
if not old[1] or tonumber(old[4]) <= tonumber(ARGV[2]) then
  return false
end
if ARGV[7] ~= '*' and (ARGV[7] == '' or ARGV[7] ~= old[5]) then
  return {'forbidden'}
end
local exp = ARGV[3]
if tonumber(old[4]) > tonumber(exp) then
  exp = old[4]
end
local status, changed = old[2], 0
if old[6] == 'critical' and ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'rep', ARGV[4], 'hb', ARGV[2], 'exp', exp)
elseif ARGV[4] ~= '' and ARGV[4] ~= status then
  redis.call('HINCRBY', KEYS[4], status, -1)
  redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
  status, changed = ARGV[4], 1
  redis.call('HSET', KEYS[1], 'status', status, 'hb', ARGV[2], 'exp', exp)
  local revision = redis.call('INCR', KEYS[3])
  emit(KEYS[5], ARGV[6], ARGV[8], 'status_changed', ARGV[5], ARGV[1], revision, old[1], status, old[3], ARGV[2],
       exp, {old[6], old[7], old[8]})
else
  redis.call('HSET', KEYS[1], 'hb', ARGV[2], 'exp', exp)
end
redis.call('ZADD', KEYS[2], exp, ARGV[1])
return {old[1], status, old[3], ARGV[2], exp, changed, old[6] or '', old[7] or '', old[8] or ''}
