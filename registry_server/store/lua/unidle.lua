-- Take services out of the idle index, each only if its score is still the one the caller read: a service
-- set aside again meanwhile (a newer score) stays for its own retention.
-- KEYS: 1 idle index
-- ARGV: name, score, name, score, ...
local removed = 0
for i = 1, #ARGV, 2 do
  if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i]) or '-1') == tonumber(ARGV[i + 1]) then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
