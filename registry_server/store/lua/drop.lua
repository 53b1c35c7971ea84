-- Drop one service that has had no instance since ARGV[1] ms (its last event is older): its revision,
-- counts and event history. Its last revision stays for ARGV[2] ms in a marker that a registration
-- bringing the service back starts above (register.lua), so its revisions never go backwards.
-- KEYS: 1 leases  2 revision  3 status counts  4 events stream  5 retired marker  6 idle mark
-- ARGV: 1 cutoff ms  2 marker lifetime ms  3 the revision the caller raised the store's floor to
-- Returns the revision dropped, or -1 when the service is not to be dropped (now).
if redis.call('ZCARD', KEYS[1]) > 0 then
  return -1
end
local last = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)
if last[1] and tonumber(string.match(last[1][1], '^(%d+)')) > tonumber(ARGV[1]) then
  return -1
end
local revision = tonumber(redis.call('GET', KEYS[2]) or '0')
if revision ~= tonumber(ARGV[3]) then
  return -1
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6])
if revision > 0 then
  redis.call('SET', KEYS[5], revision, 'PX', ARGV[2])
end
return revision
