-- Release an instance id's claim if the service still holds it.
-- KEYS: 1 the id's owner key
-- ARGV: 1 service name
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return true
