-- Raise the store-wide revision floor to ARGV[1] (never lower it); returns the floor.
-- KEYS: 1 revision floor
local floor = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > floor then
  floor = tonumber(ARGV[1])
  redis.call('SET', KEYS[1], floor)
end
return floor
