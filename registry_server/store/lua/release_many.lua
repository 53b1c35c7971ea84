-- Release many instance ids' claims at once (one Redis, not a Cluster: the keys span slots), each only if
-- its service still holds it.
-- KEYS: the ids' owner keys   ARGV: the service name of each, in the same order
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then
    redis.call('DEL', key)
  end
end
return true
