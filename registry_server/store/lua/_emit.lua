-- Shared by the change scripts (prepended to each): record one change in the service's event stream and
-- announce it on the change channel, in the same atomic step as the change itself.
-- stream, maxlen: keys/args of the caller; fields: type, service, id, rev, doc, status, reg, hb, exp, and
-- health: the instance's health fields {hs, hat, hout} as its hash holds them (a checked instance's event
-- carries them, so that it shows the instance as GET /instances/{id} does; unchecked: none, or false/'').
-- record() appends the event and returns it as announced; emit() also announces it, alone (a JSON
-- object); a script that records many announces them together as one JSON array (see expire.lua).
-- A stream is bounded in bytes too: each event trims it, exactly (not to Redis's whole nodes, which
-- could hold 100 more events), to as many events of its own size as fit in STREAM_BYTES (at least 16, at
-- most maxlen), so a service re-registering large documents keeps fewer.
local STREAM_BYTES = 1048576
local function record(stream, maxlen, kind, service, id, rev, doc, status, reg, hb, exp, health)
  local checked = health and health[1] and health[1] ~= ''
  local out = #doc + 128 + (checked and #(health[3] or '') + 48 or 0)
  local cap = math.max(16, math.min(tonumber(maxlen), math.floor(STREAM_BYTES / out)))
  local args = {stream, 'MAXLEN', cap, '*', 'type', kind, 'service', service, 'id', id, 'rev', rev,
                'doc', doc, 'status', status, 'reg', reg, 'hb', hb, 'exp', exp}
  local event = {type = kind, service = service, id = id, rev = rev, doc = doc, status = status, reg = reg,
                 hb = hb, exp = exp}
  if checked then
    local hat, hout = health[2] or '', health[3] or ''
    for _, field in ipairs({'hs', health[1], 'hat', hat, 'hout', hout}) do
      table.insert(args, field)
    end
    event.hs, event.hat, event.hout = health[1], hat, hout
  end
  event.sid = redis.call('XADD', unpack(args))
  return event
end
local function emit(stream, maxlen, channel, kind, service, id, rev, doc, status, reg, hb, exp, health)
  redis.call('PUBLISH', channel, cjson.encode(record(stream, maxlen, kind, service, id, rev, doc, status, reg,
                                                     hb, exp, health)))
end
