-- Shared by the change scripts (prepended to each): record one change in the service's event stream and
-- announce it on the change channel, in the same atomic step as the change itself.
-- stream, maxlen, channel: keys/args of the caller; fields: type, service, id, rev, doc, status, reg, hb, exp
local function emit(stream, maxlen, channel, kind, service, id, rev, doc, status, reg, hb, exp)
  local sid = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'service', service,
                         'id', id, 'rev', rev, 'doc', doc, 'status', status, 'reg', reg, 'hb', hb, 'exp', exp)
  redis.call('PUBLISH', channel, cjson.encode({sid = sid, type = kind, service = service, id = id,
                                               rev = rev, doc = doc, status = status, reg = reg, hb = hb,
                                               exp = exp}))
end
