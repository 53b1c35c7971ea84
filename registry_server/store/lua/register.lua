-- Register or re-register one instance of one service, atomically, recording the change.
-- All keys share the service's hash tag (one Cluster slot). Ownership of the id across services is
-- settled before, on the id's own key (claim.lua).
-- KEYS: 1 instance hash  2 leases (zset id -> expiry ms)  3 revision  4 status counts  5 events stream
--       6 retired marker (drop.lua)  7 idle mark (set_idle.lua)
-- ARGV: 1 id  2 name  3 document (JSON)  4 status  5 now ms  6 expiry ms  7 lease token hash
--       8 stream max length  9 presented lease token hash ('*': the admin)  10 change channel
--       11 the store's revision floor, as the caller last read it
-- Returns {"forbidden"} or {"ok", created, replaced_expired, registered_at, revision, fresh, status, health
-- status, checked at, output}; fresh: 1 when this registration (re)created the service's revision, above the
-- floor and the retired marker, or found it marked idle (set_idle.lua): the caller indexes it again.
-- The same live instance registering the same document again keeps its checks' findings (while critical
-- its status stays DOWN, what it asked for is shown once a check passes).
local now = tonumber(ARGV[5])
local old = redis.call('HMGET', KEYS[1], 'doc', 'status', 'reg', 'hb', 'exp', 'tok', 'hs', 'hat', 'hout')
if old[1] and tonumber(old[5]) > now and ARGV[9] ~= '*' and (ARGV[9] == '' or ARGV[9] ~= old[6]) then
  return {'forbidden'}
end
local status = ARGV[4]
local health = {'', '', ''}
if old[1] and tonumber(old[5]) > now and old[1] == ARGV[3] then
  health = {old[7] or '', old[8] or '', old[9] or ''}
  if old[7] == 'critical' then
    redis.call('HSET', KEYS[1], 'rep', status)
    status = 'DOWN'
  end
elseif old[1] then
  redis.call('HDEL', KEYS[1], 'hs', 'hat', 'hout', 'hf', 'rep', 'hcs')
end
local created, expired = 1, 0
local kind = 'registered'
local registered_at = ARGV[5]
if old[1] then
  redis.call('HINCRBY', KEYS[4], old[2], -1)
  if tonumber(old[5]) <= now then
    expired = 1
  else
    created = 0
    registered_at = old[3]
    if old[1] ~= ARGV[3] then
      kind = 'updated'
    elseif old[2] ~= status then
      kind = 'status_changed'
    else
      kind = nil
    end
  end
end
redis.call('HSET', KEYS[1], 'doc', ARGV[3], 'status', status, 'reg', registered_at, 'hb', ARGV[5],
           'exp', ARGV[6], 'tok', ARGV[7])
redis.call('HINCRBY', KEYS[4], status, 1)
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
local revision
local fresh = redis.call('DEL', KEYS[7])
if kind then
  if redis.call('EXISTS', KEYS[3]) == 0 then
    fresh = 1
    local floor = math.max(tonumber(ARGV[11]) or 0, tonumber(redis.call('GET', KEYS[6]) or '0'))
    if floor > 0 then
      redis.call('SET', KEYS[3], floor)
    end
  end
  revision = redis.call('INCR', KEYS[3])
  if expired == 1 then
    emit(KEYS[5], ARGV[8], ARGV[10], 'expired', ARGV[2], ARGV[1], revision, old[1], old[2], old[3], old[4], old[5],
         {old[7], old[8], old[9]})
  end
  emit(KEYS[5], ARGV[8], ARGV[10], kind, ARGV[2], ARGV[1], revision, ARGV[3], status, registered_at, ARGV[5],
       ARGV[6], health)
else
  revision = tonumber(redis.call('GET', KEYS[3]) or '0')
end
return {'ok', created, expired, registered_at, revision, fresh, status, health[1], health[2], health[3]}
