#!lua name=edge
-- The edge's Redis Function. It stores a message in its channel's stream
-- and relays it to every node in one atomic step:
--
--   FCALL edge_publish 1 edge:{CHANNEL} EVENT PAYLOAD [NAME VALUE]...
--
-- and answers the message id. EVENT may be "" for the default type. After
-- PAYLOAD come optional named options, in any order, each at most once:
--
--   history-size N          messages kept per channel (XADD MAXLEN ~ N)
--   history-ttl-ms MS       how long messages are kept (XTRIM MINID ~, PEXPIRE)
--   max-payload BYTES       the largest payload
--   idempotency-key KEY     publish once: see below
--   idempotency-ttl-ms MS   how long KEY is remembered (default 600000, 10 min)
--
-- An option it does not know is an error, so that a caller never believes
-- an option took effect that this version ignores. Each setting an option
-- does not give comes from the fleet's settings, the hash edge:settings
-- that the nodes write at start, except on Redis Cluster: there a function
-- may touch only keys of its declared key's slot, so it cannot read that
-- key, and the setting is the default. Nodes always pass all three
-- options, read from edge:settings.
--
-- With idempotency-key (1-128 bytes of visible ASCII, 0x21-0x7E) the call
-- publishes at most once per KEY and channel within idempotency-ttl-ms, and
-- answers an array instead of the id: {ID, REPLAYED}. The first call stores
-- and relays the message and answers {ID, 0}; a later call with the same
-- KEY, EVENT and PAYLOAD stores and relays nothing and answers the first
-- call's {ID, 1}; one with the same KEY and another EVENT or PAYLOAD fails
-- with "ERR edge: idempotency key reused for another message". Each KEY
-- costs one string key in the channel's slot, edge:{CHANNEL}:once:KEY =
-- "ID SHA1(EVENT\nPAYLOAD)", which expires after idempotency-ttl-ms: the
-- keys a channel holds are bounded by the keyed publishes of one window.
--
-- Several messages of one channel are stored and relayed together by
--
--   FCALL edge_publish_batch 1 edge:{CHANNEL} COUNT EVENT PAYLOAD ... [NAME VALUE]...
--
-- with COUNT pairs of EVENT and PAYLOAD and the same options but the
-- idempotency ones (a batch has no key), which
-- answers the ids, in order. It checks every message before it stores
-- any, so that either all of them are stored, with consecutive ids, or
-- none is.
--
-- This text is the same for every node: nothing of a node's configuration
-- is built into it.

-- Facts of the protocol, defined in Go (package edge) and pinned to it by
-- resume's TestFunctionFacts.
local NAME_ALPHABET = 'A-Z a-z 0-9 _ - . : @ /' -- edge.NameAlphabet
local MAX_CHANNEL_LEN = 200 -- edge.MaxChannelLen
local MAX_EVENT_LEN = 64 -- edge.MaxEventLen
local RESERVED_EVENTS = {gap = true, disconnect = true} -- edge.IsReservedEvent
local MAX_IDEMPOTENCY_KEY_LEN = 128 -- edge.MaxIdempotencyKeyLen
local IDEMPOTENCY_TTL_MS = 600000 -- edge.DefaultIdempotencyWindow

-- patterns returns the Lua patterns of a stream key and of an event type,
-- built from NAME_ALPHABET on first use (the string library is not there
-- while the library loads): each range as it is, each single byte escaped,
-- as in "[A-Za-z0-9%_%-%.%:%@%/]".
local key_pattern, event_pattern
local function patterns()
  if not key_pattern then
    local class = '['
    for r in string.gmatch(NAME_ALPHABET, '%S+') do
      if #r == 3 and string.sub(r, 2, 2) == '-' then
        class = class .. r
      else
        class = class .. '%' .. r
      end
    end
    class = class .. ']'
    key_pattern = '^edge:{(' .. class .. '+)}$'
    event_pattern = '^' .. class .. '*$'
  end
  return key_pattern, event_pattern
end

-- The fleet's settings (resume's settingsKey) and the defaults of
-- edge.Config, for settings given neither by an option nor by that key.
local SETTINGS_KEY = 'edge:settings'
local DEFAULTS = {
  ['history-size'] = 1000,
  ['history-ttl-ms'] = 3600000,
  ['max-payload'] = 65536,
}

-- The idempotency options of edge_publish, which take no default from the
-- fleet's settings.
local ONCE_KEY, ONCE_TTL = 'idempotency-key', 'idempotency-ttl-ms'

local USAGE = 'ERR edge: usage: FCALL edge_publish 1 edge:{channel} event payload [name value]...'
local USAGE_BATCH = 'ERR edge: usage: FCALL edge_publish_batch 1 edge:{channel} count event payload ... [name value]...'

-- positive returns v as a whole number >= 1, or nil.
local function positive(v)
  local n = tonumber(v)
  if n and n >= 1 and n % 1 == 0 then
    return n
  end
  return nil
end

-- in_cluster caches whether this Redis runs in cluster mode, which
-- cannot change while it runs (INFO is too costly to ask at every call).
local in_cluster

-- fleet returns the fleet's settings from edge:settings (those missing or
-- malformed there are nil), or an empty table on Redis Cluster.
local function fleet()
  if in_cluster == nil then
    in_cluster = string.find(redis.call('INFO', 'cluster'), 'cluster_enabled:1', 1, true) ~= nil
  end
  if in_cluster then
    return {}
  end
  local v = redis.pcall('HMGET', SETTINGS_KEY, 'history-size', 'history-ttl-ms', 'max-payload')
  if v.err then
    return {} -- not a hash: the nodes say so in their logs
  end
  return {
    ['history-size'] = positive(v[1]),
    ['history-ttl-ms'] = positive(v[2]),
    ['max-payload'] = positive(v[3]),
  }
end

-- settings returns the history size, the history TTL in ms, the largest
-- payload, the idempotency key (nil without one) and its TTL in ms for one
-- call (the options from args[from] on, then the fleet's, then the
-- defaults), or nil and an error. Only a caller that can publish once
-- (once true) may pass the idempotency options.
local function settings(args, from, once)
  -- The nodes pass the three retention options in this order: read them
  -- without building a table (this call is on every publish's path).
  if #args == from + 5 and args[from] == 'history-size' and args[from + 2] == 'history-ttl-ms' and args[from + 4] == 'max-payload' then
    local size, ttl, max = positive(args[from + 1]), positive(args[from + 3]), positive(args[from + 5])
    if size and ttl and max then
      return size, ttl, max, nil, nil
    end
  end
  local s, given = {}, 0
  local once_key, once_ttl
  for i = from, #args, 2 do
    local name, value = args[i], args[i + 1]
    if once and name == ONCE_KEY then
      if once_key ~= nil then
        return nil, 'ERR edge: option ' .. name .. ' given twice'
      end
      if #value < 1 or #value > MAX_IDEMPOTENCY_KEY_LEN or not string.match(value, '^[!-~]+$') then
        return nil, 'ERR edge: option ' .. name .. ' must be 1-' .. MAX_IDEMPOTENCY_KEY_LEN .. ' bytes of visible ASCII (0x21-0x7E)'
      end
      once_key = value
    elseif once and name == ONCE_TTL then
      if once_ttl ~= nil then
        return nil, 'ERR edge: option ' .. name .. ' given twice'
      end
      once_ttl = positive(value)
      if once_ttl == nil then
        return nil, 'ERR edge: option ' .. name .. ' must be a whole number of at least 1'
      end
    elseif DEFAULTS[name] == nil then
      -- "usage" tells a node of a later release that sent it that this
      -- function is older than its own and ran nothing: it loads its own.
      local names = 'history-size, history-ttl-ms and max-payload'
      if once then
        names = 'history-size, history-ttl-ms, max-payload, ' .. ONCE_KEY .. ' and ' .. ONCE_TTL
      end
      return nil, 'ERR edge: usage: unknown option ' .. string.format('%q', string.sub(name, 1, 64)) .. '; the options are ' .. names
    else
      if s[name] ~= nil then
        return nil, 'ERR edge: option ' .. name .. ' given twice'
      end
      s[name] = positive(value)
      if s[name] == nil then
        return nil, 'ERR edge: option ' .. name .. ' must be a whole number of at least 1'
      end
      given = given + 1
    end
  end
  if once_ttl and not once_key then
    return nil, 'ERR edge: option ' .. ONCE_TTL .. ' needs ' .. ONCE_KEY
  end
  if given < 3 then
    local from = fleet()
    for name, default in pairs(DEFAULTS) do
      if s[name] == nil then
        s[name] = from[name] or default
      end
    end
  end
  return s['history-size'], s['history-ttl-ms'], s['max-payload'], once_key, once_ttl or IDEMPOTENCY_TTL_MS
end

-- check_key returns nil when key is a channel's stream key, or an error.
local function check_key(key)
  local key_pat = patterns()
  local ch = string.match(key, key_pat)
  if not ch or #ch > MAX_CHANNEL_LEN then
    return 'ERR edge: the key must be edge:{channel}, channel 1-' .. MAX_CHANNEL_LEN .. ' bytes of ' .. NAME_ALPHABET
  end
  return nil
end

-- valid_event reports whether event is a type a publisher may send.
local function valid_event(event)
  local _, event_pat = patterns()
  return #event <= MAX_EVENT_LEN and string.match(event, event_pat) and not RESERVED_EVENTS[event]
end

-- store appends a message to the stream key, trimmed to size, and relays
-- it; it returns the id.
local function store(key, size, event, data)
  local id = redis.call('XADD', key, 'MAXLEN', '~', size, '*', 'e', event, 'd', data)
  -- The live relay payload, version 2: "0<id>\n<event>\n<data>". The
  -- leading zero marks the version; a node of the previous release, whose
  -- payload was "<id>\n<event>\n<data>", reads the same id (see
  -- resume's liveMessage).
  redis.call('SPUBLISH', key .. ':live', '0' .. id .. '\n' .. event .. '\n' .. data)
  return id
end

-- expire trims the stream key by age and sets it to expire when idle.
local function expire(key, ttl)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('XTRIM', key, 'MINID', '~', now - ttl)
  redis.call('PEXPIRE', key, ttl)
end

-- once_digest returns what an idempotency key remembers of a message.
local function once_digest(event, data)
  return redis.sha1hex(event .. '\n' .. data)
end

local function publish(keys, args)
  if #keys ~= 1 or #args < 2 or #args % 2 ~= 0 then
    return redis.error_reply(USAGE)
  end
  local key = keys[1]
  local bad = check_key(key)
  if bad then
    return redis.error_reply(bad)
  end
  local event, data = args[1], args[2]
  if not valid_event(event) then
    return redis.error_reply('ERR edge: invalid event type')
  end
  local size, ttl, max, once_key, once_ttl = settings(args, 3, true)
  if not size then
    return redis.error_reply(ttl)
  end
  if #data > max then
    return redis.error_reply('ERR edge: payload too large')
  end
  if not once_key then
    local id = store(key, size, event, data)
    expire(key, ttl)
    return id
  end
  -- In the channel's slot, as the function may touch only that one.
  local once = key .. ':once:' .. once_key
  local digest = once_digest(event, data)
  local seen = redis.call('GET', once)
  if seen then
    local id, was = string.match(seen, '^(%S+) (%x+)$')
    if was ~= digest then
      return redis.error_reply('ERR edge: idempotency key reused for another message')
    end
    return {id, 1}
  end
  local id = store(key, size, event, data)
  expire(key, ttl)
  redis.call('SET', once, id .. ' ' .. digest, 'PX', once_ttl)
  return {id, 0}
end

local function publish_batch(keys, args)
  local n = positive(args[1])
  if #keys ~= 1 or not n or #args < 1 + 2 * n or (#args - 1) % 2 ~= 0 then
    return redis.error_reply(USAGE_BATCH)
  end
  local key = keys[1]
  local bad = check_key(key)
  if bad then
    return redis.error_reply(bad)
  end
  local size, ttl, max = settings(args, 2 + 2 * n, false)
  if not size then
    return redis.error_reply(ttl)
  end
  -- Every message is checked before any is stored: all or none.
  for i = 2, 2 * n, 2 do
    if not valid_event(args[i]) then
      return redis.error_reply('ERR edge: invalid event type')
    end
    if #args[i + 1] > max then
      return redis.error_reply('ERR edge: payload too large')
    end
  end
  local ids = {}
  for i = 2, 2 * n, 2 do
    ids[#ids + 1] = store(key, size, args[i], args[i + 1])
  end
  expire(key, ttl)
  return ids
end

redis.register_function('edge_publish', publish)
redis.register_function('edge_publish_batch', publish_batch)
