-- Shared by the change scripts (prepended to each): record one change in the service's event stream and
-- announce it on the change channel, in the same atomic step as the change itself.
-- stream, maxlen: keys/args of the caller; fields: type, service, id, rev, doc, status, reg, hb, exp
-- record() appends the event and returns it as announced; emit() also announces it, alone (a JSON
-- object); a script that records many announces them together as one JSON array (see expire.lua).
local function record(stream, maxlen, kind, service, id, rev, doc, status, reg, hb, exp)
  local sid = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'service', service,
                         'id', id, 'rev', rev, 'doc', doc, 'status', status, 'reg', reg, 'hb', hb, 'exp', exp)
  return {sid = sid, type = kind, service = service, id = id, rev = rev, doc = doc, status = status, reg = reg,
          hb = hb, exp = exp}
end
local function emit(stream, maxlen, channel, kind, service, id, rev, doc, status, reg, hb, exp)
  redis.call('PUBLISH', channel, cjson.encode(record(stream, maxlen, kind, service, id, rev, doc, status, reg,
                                                     hb, exp)))
end
