-- Remove up to ARGV[3] instances of one service whose lease ran out. Whoever runs this for an
-- instance first removes and returns it; every other replica finds nothing: each expiry counted once.
-- KEYS: 1 leases  2 revision  3 status counts  4 events stream
-- ARGV: 1 name  2 now ms  3 limit  4 instance key prefix  5 stream max length  6 change channel
-- Returns {end of the earliest lease left (-1: none), id, id, ...}: the ids this call removed
local function earliest()
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return first[2] or -1
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
if #ids == 0 then
  return {earliest()}
end
local revision = redis.call('INCR', KEYS[2])
local out = {0}
local events = {}
for _, id in ipairs(ids) do
  local key = ARGV[4] .. id
  local old = redis.call('HMGET', key, 'doc', 'status', 'reg', 'hb', 'exp', 'hs', 'hat', 'hout')
  redis.call('ZREM', KEYS[1], id)
  redis.call('DEL', key)
  if old[1] then
    redis.call('HINCRBY', KEYS[3], old[2], -1)
    table.insert(out, id)
    table.insert(events, record(KEYS[4], ARGV[5], 'expired', ARGV[1], id, revision, old[1], old[2], old[3],
                                old[4], old[5], {old[6], old[7], old[8]}))
  end
end
if #events > 0 then  -- one announcement for the whole batch: a mass expiry is not thousands of messages
  redis.call('PUBLISH', ARGV[6], cjson.encode(events))
end
out[1] = earliest()
return out
