-- The live instances of one service and its revision.
-- KEYS: 1 leases  2 revision
-- ARGV: 1 now ms  2 instance key prefix
-- Returns {revision, id, doc, status, registered_at, hb, exp, health status, checked at, output, id, ...}
local out = {tonumber(redis.call('GET', KEYS[2]) or '0')}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
for _, id in ipairs(ids) do
  local v = redis.call('HMGET', ARGV[2] .. id, 'doc', 'status', 'reg', 'hb', 'exp', 'hs', 'hat', 'hout')
  if v[1] then
    table.insert(out, id)
    for i = 1, 5 do table.insert(out, v[i]) end
    for i = 6, 8 do table.insert(out, v[i] or '') end
  end
end
return out
