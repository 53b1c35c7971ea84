-- Shared by the change scripts (prepended to each): record one change in the service's event stream and
-- announce it on the change channel, in the same atomic step as the change itself.
-- stream, maxlen: keys/args of the caller; fields: type, service, id, rev, doc, status, reg, hb, exp
-- record() appends the event and returns it as announced; emit() also announces it, alone (a JSON
-- object); a script that records many announces them together as one JSON array (see expire.lua).
-- A stream is bounded in bytes too: each event trims it, exactly (not to Redis's whole nodes, which
-- could hold 100 more events), to as many events of its own size as fit in STREAM_BYTES (at least 16, at
-- most maxlen), so a service re-registering large documents keeps fewer.
local STREAM_BYTES = 1048576
local function record(stream, maxlen, kind, service, id, rev, doc, status, reg, hb, exp)
  local cap = math.max(16, math.min(tonumber(maxlen), math.floor(STREAM_BYTES / (#doc + 128))))
  local sid = redis.call('XADD', stream, 'MAXLEN', cap, '*', 'type', kind, 'service', service,
                         'id', id, 'rev', rev, 'doc', doc, 'status', status, 'reg', reg, 'hb', hb, 'exp', exp)
  return {sid = sid, type = kind, service = service, id = id, rev = rev, doc = doc, status = status, reg = reg,
          hb = hb, exp = exp}
end
local function emit(stream, maxlen, channel, kind, service, id, rev, doc, status, reg, hb, exp)
  redis.call('PUBLISH', channel, cjson.encode(record(stream, maxlen, kind, service, id, rev, doc, status, reg,
                                                     hb, exp)))
end
