#!lua name=edge
-- The edge's Redis Function. It stores a message in its channel's stream
-- and relays it to every node in one atomic step:
--
--   FCALL edge_publish 1 edge:{CHANNEL} EVENT PAYLOAD [NAME VALUE]...
--
-- and answers the message id. EVENT may be "" for the default type. After
-- PAYLOAD come optional named options, in any order, each at most once:
--
--   history-size N       messages kept per channel (XADD MAXLEN ~ N)
--   history-ttl-ms MS    how long messages are kept (XTRIM MINID ~, PEXPIRE)
--   max-payload BYTES    the largest payload
--
-- An option it does not know is an error, so that a caller never believes
-- an option took effect that this version ignores. Each setting an option
-- does not give comes from the fleet's settings, the hash edge:settings
-- that the nodes write at start, except on Redis Cluster: there a function
-- may touch only keys of its declared key's slot, so it cannot read that
-- key, and the setting is the default. Nodes always pass all three
-- options, read from edge:settings.
--
-- This text is the same for every node: nothing of a node's configuration
-- is built into it.

-- Facts of the protocol, defined in Go (package edge) and pinned to it by
-- resume's TestFunctionFacts.
local NAME_ALPHABET = 'A-Z a-z 0-9 _ - . : @ /' -- edge.NameAlphabet
local MAX_CHANNEL_LEN = 200 -- edge.MaxChannelLen
local MAX_EVENT_LEN = 64 -- edge.MaxEventLen
local RESERVED_EVENTS = {gap = true, disconnect = true} -- edge.IsReservedEvent

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

local USAGE = 'ERR edge: usage: FCALL edge_publish 1 edge:{channel} event payload [name value]...'

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

-- settings returns the history size, the history TTL in ms and the
-- largest payload for one call (the options after the payload, then the
-- fleet's, then the defaults), or nil and an error.
local function settings(args)
  -- The nodes pass all three options in this order: read them without
  -- building a table (this call is on every publish's path).
  if #args == 8 and args[3] == 'history-size' and args[5] == 'history-ttl-ms' and args[7] == 'max-payload' then
    local size, ttl, max = positive(args[4]), positive(args[6]), positive(args[8])
    if size and ttl and max then
      return size, ttl, max
    end
  end
  local s, given = {}, 0
  for i = 3, #args, 2 do
    local name, value = args[i], args[i + 1]
    if DEFAULTS[name] == nil then
      -- "usage" tells a node of a later release that sent it that this
      -- function is older than its own and ran nothing: it loads its own.
      return nil, 'ERR edge: usage: unknown option ' .. string.format('%q', string.sub(name, 1, 64)) .. '; the options are history-size, history-ttl-ms and max-payload'
    end
    if s[name] ~= nil then
      return nil, 'ERR edge: option ' .. name .. ' given twice'
    end
    s[name] = positive(value)
    if s[name] == nil then
      return nil, 'ERR edge: option ' .. name .. ' must be a whole number of at least 1'
    end
    given = given + 1
  end
  if given < 3 then
    local from = fleet()
    for name, default in pairs(DEFAULTS) do
      if s[name] == nil then
        s[name] = from[name] or default
      end
    end
  end
  return s['history-size'], s['history-ttl-ms'], s['max-payload']
end

local function publish(keys, args)
  if #keys ~= 1 or #args < 2 or #args % 2 ~= 0 then
    return redis.error_reply(USAGE)
  end
  local key = keys[1]
  local key_pat, event_pat = patterns()
  local ch = string.match(key, key_pat)
  if not ch or #ch > MAX_CHANNEL_LEN then
    return redis.error_reply('ERR edge: the key must be edge:{channel}, channel 1-' .. MAX_CHANNEL_LEN .. ' bytes of ' .. NAME_ALPHABET)
  end
  local event, data = args[1], args[2]
  if #event > MAX_EVENT_LEN or not string.match(event, event_pat) or RESERVED_EVENTS[event] then
    return redis.error_reply('ERR edge: invalid event type')
  end
  local size, ttl, max = settings(args)
  if not size then
    return redis.error_reply(ttl)
  end
  if #data > max then
    return redis.error_reply('ERR edge: payload too large')
  end
  local id = redis.call('XADD', key, 'MAXLEN', '~', size, '*', 'e', event, 'd', data)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('XTRIM', key, 'MINID', '~', now - ttl)
  redis.call('PEXPIRE', key, ttl)
  -- The live relay payload, version 2: "0<id>\n<event>\n<data>". The
  -- leading zero marks the version; a node of the previous release, whose
  -- payload was "<id>\n<event>\n<data>", reads the same id (see
  -- resume's liveMessage).
  redis.call('SPUBLISH', key .. ':live', '0' .. id .. '\n' .. event .. '\n' .. data)
  return id
end

redis.register_function('edge_publish', publish)
