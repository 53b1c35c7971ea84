-- Remove up to ARGV[3] instances of one service whose lease ran out. Whoever runs this for an
-- instance first removes and returns it; every other replica finds nothing: each expiry counted once.
-- KEYS: 1 ids  2 services  3 leases  4 revision  5 status counts  6 events stream
-- ARGV: 1 name  2 now ms  3 limit  4 instance key prefix  5 stream max length
-- Returns a flat list: id, doc, status, registered_at, hb, exp, id, ...
local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
if #ids == 0 then
  return {}
end
local revision = redis.call('INCR', KEYS[4])
local out = {}
for _, id in ipairs(ids) do
  local key = ARGV[4] .. id
  local old = redis.call('HMGET', key, 'doc', 'status', 'reg', 'hb', 'exp')
  redis.call('ZREM', KEYS[3], id)
  redis.call('DEL', key)
  redis.call('HDEL', KEYS[1], id)
  if old[1] then
    redis.call('HINCRBY', KEYS[5], old[2], -1)
    table.insert(out, id)
    for i = 1, 5 do table.insert(out, old[i]) end
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[5], '*', 'type', 'expired', 'service', ARGV[1],
               'id', id, 'rev', revision, 'doc', old[1], 'status', old[2], 'reg', old[3], 'hb', old[4],
               'exp', old[5])
  end
end
local n = redis.call('ZCARD', KEYS[3])
if n == 0 then
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], n)
end
return out
