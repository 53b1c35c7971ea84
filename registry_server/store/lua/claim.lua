-- Claim an instance id for a service, on the id's own key (its own Cluster slot).
-- KEYS: 1 the id's owner key
-- ARGV: 1 service name  2 a previous owner this caller found dead and may take over from ('' for none)
-- Returns false when the claim is held, else the other service's name
local owner = redis.call('GET', KEYS[1])
if not owner or owner == ARGV[1] or owner == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1])
  return false
end
return owner
