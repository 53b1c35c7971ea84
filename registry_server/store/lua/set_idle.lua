-- Mark one service idle if it has no instance (not even one whose lease ran out unswept). The caller has
-- taken it out of the index the sweeps visit and put it in the idle index; a registration that finds the
-- mark removes it and indexes the service again (register.lua), so none is left out of both.
-- KEYS: 1 leases  2 idle mark
-- ARGV: 1 now ms
-- Returns ARGV[1], or -1 when the service has an instance (the caller indexes it again).
if redis.call('ZCARD', KEYS[1]) > 0 then
  return -1
end
redis.call('SET', KEYS[2], ARGV[1])
return tonumber(ARGV[1])
