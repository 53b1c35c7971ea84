-- After a store outage: give every lease of one service that was live when the outage began at least
-- until ARGV[2], so that no owner is expired for heartbeats the outage swallowed. Idempotent: replicas
-- that each saw the outage may all run it.
-- KEYS: 1 leases
-- ARGV: 1 outage start ms  2 extended expiry ms  3 instance key prefix
-- Returns the number of leases extended
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '(' .. ARGV[2])
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  redis.call('HSET', ARGV[3] .. id, 'exp', ARGV[2])
end
return #ids
