-- Instance counts of one service by status, leaving out leases that ran out but are not swept yet.
-- KEYS: 1 leases  2 status counts
-- ARGV: 1 now ms  2 instance key prefix
-- Returns {live count, {status, n, ...}, {status of each unswept expired instance}}
local live = redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf')
local counts = redis.call('HGETALL', KEYS[2])
local stale = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])) do
  table.insert(stale, redis.call('HGET', ARGV[2] .. id, 'status') or '')
end
return {live, counts, stale}
