-- Give every lease of one service that is live after ARGV[1] at least until ARGV[2], so that no owner is
-- expired for heartbeats nobody could hear (a store outage, the whole fleet down, an overload).
-- Idempotent: replicas that each saw the outage may all run it.
-- KEYS: 1 leases
-- ARGV: 1 since ms  2 extended expiry ms  3 instance key prefix  4 heard since ms ('' = any): only
--       leases whose last heartbeat (or registration) is no older
-- Returns the number of leases extended
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '(' .. ARGV[2])
local heard_since = tonumber(ARGV[4])
local extended = 0
for _, id in ipairs(ids) do
  if heard_since == nil or (tonumber(redis.call('HGET', ARGV[3] .. id, 'hb')) or 0) >= heard_since then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    redis.call('HSET', ARGV[3] .. id, 'exp', ARGV[2])
    extended = extended + 1
  end
end
return extended
