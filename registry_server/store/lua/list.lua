-- The live instances of one service and its revision (of a dropped or unknown service: its retired
-- marker or the store's revision floor, so that revisions never go backwards).
-- KEYS: 1 leases  2 revision  3 retired marker
-- ARGV: 1 now ms  2 instance key prefix  3 the store's revision floor
-- Returns {revision, id, doc, status, registered_at, hb, exp, health status, checked at, output, id, ...}
local revision = redis.call('GET', KEYS[2])
if not revision then
  revision = math.max(tonumber(ARGV[3]) or 0, tonumber(redis.call('GET', KEYS[3]) or '0'))
end
local out = {tonumber(revision)}
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
