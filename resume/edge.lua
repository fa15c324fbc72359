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
--   traceparent TP          the publish's W3C trace context: see below
--   key KEY                 the message's conflation key: see below
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
-- A caller on Redis Cluster should declare that key too, as a second key
-- (FCALL edge_publish 2 edge:{CHANNEL} edge:{CHANNEL}:once:KEY ...): while
-- a resharding migrates the slot, the stream and the key may sit on
-- different masters, and only a call that declares both is refused
-- (-TRYAGAIN, -ASK) until they are together, rather than run where the
-- key is missing and store the message again.
--
-- With traceparent (a W3C traceparent of version 00, exactly as in the
-- HTTP header: "00-" 32 and 16 lowercase hex digits, neither all zeros,
-- "-" 2 hex digits of flags; 55 bytes) the relayed message carries it, so
-- that the nodes that deliver it continue the publish's trace. Anything
-- else is refused with "ERR edge: option traceparent must be ...": the
-- nodes send only what they formatted from a valid span, so a bad one is
-- a caller's bug, which an error shows and dropping it would hide. The
-- stream entry does not keep it: a message read from history is a later
-- read, not the publish's delivery.
--
-- With key (1-128 bytes of visible ASCII, 0x21-0x7E) the message carries a
-- conflation key (an instrument, a widget): a subscriber that conflates
-- gets the latest message of each key, and deltas are taken between
-- messages of one key. The stream entry keeps it as the field k, the
-- relayed message as the attribute k=KEY. Anything else is refused with
-- "ERR edge: option key must be ...".
--
-- Several messages of one channel are stored and relayed together by
--
--   FCALL edge_publish_batch 1 edge:{CHANNEL} COUNT EVENT PAYLOAD ... [NAME VALUE]...
--
-- with COUNT pairs of EVENT and PAYLOAD and the same options but the
-- idempotency ones and key (a batch has no idempotency key; a traceparent
-- goes with each of its messages); instead of key, the option keys gives
-- the COUNT messages' conflation keys, separated by newlines, each empty
-- (no key) or a key as above. It
-- answers the ids, in order. It checks every message before it stores
-- any, so that either all of them are stored, with consecutive ids, or
-- none is.
--
-- Presence: who subscribes to a channel, fleet-wide. Each member is a
-- connection subscribed to the channel on one node, kept in two keys of
-- the channel's slot: edge:{CHANNEL}:members, a sorted set of the
-- members' connection ids scored by when they expire (ms, Redis's clock),
-- and edge:{CHANNEL}:member-info, a hash of connection id to the member's
-- JSON ({"conn", "sub", "info", "node"}). Both expire when no member is
-- written for twice TTL-MS, so that a dead channel vanishes, but only
-- after its expired members were swept and their leaves announced. The
-- node of a
-- member refreshes it while it runs; when the node dies, its members
-- expire, and the next sweep (on every refresh and every list) removes
-- them and announces their leaves:
--
--   FCALL edge_presence_join 1 edge:{CHANNEL} TTL-MS CONN MEMBER
--       adds (or replaces) a member; answers 1 and announces the join if
--       it was not a member, else 0
--   FCALL edge_presence_leave 1 edge:{CHANNEL} CONN [NODE]
--       removes a member; answers 1 and announces the leave if it was one
--       (with NODE, only if its JSON's "node" is NODE: a long-poll member
--       that moved to another node, whose join replaced the entry, is
--       not removed by the node it left; else 0)
--   FCALL edge_presence_members 1 edge:{CHANNEL} LIMIT
--       sweeps, then answers {COUNT, MEMBER...}: how many members the
--       channel has (exact) and up to LIMIT of them (0-10000)
--   FCALL edge_presence_refresh 1 edge:{CHANNEL} TTL-MS [CONN MEMBER]...
--       a node's members of the channel (up to 1000) expire TTL-MS from
--       now; those Redis lost (a restart without persistence, a failover)
--       are added again without an announcement (a MEMBER is checked only
--       then, when it is written); then it sweeps. Answers how many it
--       added again.
--
-- CONN is 1-128 bytes of visible ASCII (0x21-0x7E), MEMBER a JSON object
-- of at most 2048 bytes whose "conn" is CONN ("sub", "info" and "node"
-- are strings when present; other fields are kept for later releases),
-- TTL-MS a whole number of 1 to 86400000. Joins and leaves are announced
-- with SPUBLISH on the channel's own shard channel edge:{CHANNEL}:presence
-- (never on :live, whose every payload a node reads as a message), as
-- "1 join MEMBER" or "1 leave MEMBER": a version, the event and the
-- member's JSON.
--
-- This text is the same for every node: nothing of a node's configuration
-- is built into it.

-- Facts of the protocol, defined in Go (package edge) and pinned to it by
-- resume's TestFunctionFacts.
local NAME_ALPHABET = 'A-Z a-z 0-9 _ - . : @ /' -- edge.NameAlphabet
local MAX_CHANNEL_LEN = 200 -- edge.MaxChannelLen
local MAX_EVENT_LEN = 64 -- edge.MaxEventLen
local RESERVED_EVENTS = {gap = true, disconnect = true, join = true, leave = true} -- edge.IsReservedEvent
local MAX_IDEMPOTENCY_KEY_LEN = 128 -- edge.MaxIdempotencyKeyLen
local IDEMPOTENCY_TTL_MS = 600000 -- edge.DefaultIdempotencyWindow
local TRACEPARENT = 'traceparent' -- resume's optTraceparent
local MAX_KEY_LEN = 128 -- edge.MaxKeyLen
local KEY, KEYS = 'key', 'keys' -- resume's optKey, optKeys

-- Presence's bounds, pinned to resume's constants by TestFunctionFacts.
local MAX_CONN_LEN = 128 -- maxConnLen
local MAX_MEMBER_LEN = 2048 -- maxMemberLen
local MAX_MEMBERS_LIMIT = 10000 -- maxMembersLimit
local MAX_REFRESH = 1000 -- maxRefreshEntries (a node sends at most refreshChunk)
local MAX_PRESENCE_TTL_MS = 86400000 -- maxPresenceTTL
local MAX_SWEEP = 1000 -- expired members removed per call, at most
local PRESENCE_FORMAT = '1' -- presenceFormat, the announcements' version

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

-- traceparent_pattern returns the Lua pattern of a traceparent, built on
-- first use as patterns() is.
local tp_pattern
local function traceparent_pattern()
  if not tp_pattern then
    local hex = '[0-9a-f]'
    tp_pattern = '^00%-' .. string.rep(hex, 32) .. '%-' .. string.rep(hex, 16) .. '%-' .. hex .. hex .. '$'
  end
  return tp_pattern
end

-- valid_traceparent reports whether tp is a traceparent the relay carries:
-- version 00, a trace id and a parent id that are not all zeros.
local function valid_traceparent(tp)
  return #tp == 55 and string.match(tp, traceparent_pattern()) ~= nil
    and string.sub(tp, 4, 35) ~= '00000000000000000000000000000000'
    and string.sub(tp, 37, 52) ~= '0000000000000000'
end

-- valid_key reports whether k is a conflation key: 1-MAX_KEY_LEN bytes of
-- visible ASCII.
local function valid_key(k)
  return #k >= 1 and #k <= MAX_KEY_LEN and string.match(k, '^[!-~]+$') ~= nil
end

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
-- payload, the idempotency key (nil without one), its TTL in ms, the
-- traceparent (nil without one) and the conflation key (once true) or the
-- newline-separated conflation keys (once false; nil without them) for one
-- call (the options from args[from] on, then the fleet's, then the
-- defaults), or nil and an error. Only a caller that publishes one message
-- (once true) may pass the idempotency options and key, only a batch keys.
local function settings(args, from, once)
  -- The nodes pass the three retention options in this order, then a
  -- traceparent if the publish is traced: read them without building a
  -- table (this call is on every publish's path).
  local n = #args
  if (n == from + 5 or (n == from + 7 and args[from + 6] == TRACEPARENT)) and args[from] == 'history-size' and args[from + 2] == 'history-ttl-ms' and args[from + 4] == 'max-payload' then
    local size, ttl, max, tp = positive(args[from + 1]), positive(args[from + 3]), positive(args[from + 5]), args[from + 7]
    if size and ttl and max and (tp == nil or valid_traceparent(tp)) then
      return size, ttl, max, nil, nil, tp
    end
  end
  local s, given = {}, 0
  local once_key, once_ttl, tp, mkey
  for i = from, n, 2 do
    local name, value = args[i], args[i + 1]
    if (once and name == KEY) or (not once and name == KEYS) then
      if mkey ~= nil then
        return nil, 'ERR edge: option ' .. name .. ' given twice'
      end
      if once and not valid_key(value) then
        return nil, 'ERR edge: option ' .. name .. ' must be 1-' .. MAX_KEY_LEN .. ' bytes of visible ASCII (0x21-0x7E)'
      end
      mkey = value
    elseif name == TRACEPARENT then
      if tp ~= nil then
        return nil, 'ERR edge: option ' .. name .. ' given twice'
      end
      if not valid_traceparent(value) then
        return nil, 'ERR edge: option ' .. name .. ' must be a W3C traceparent of version 00 (00-TRACEID-PARENTID-FLAGS, lowercase hex, 55 bytes)'
      end
      tp = value
    elseif once and name == ONCE_KEY then
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
      local names = 'history-size, history-ttl-ms, max-payload, ' .. TRACEPARENT .. ' and ' .. KEYS
      if once then
        names = 'history-size, history-ttl-ms, max-payload, ' .. ONCE_KEY .. ', ' .. ONCE_TTL .. ', ' .. TRACEPARENT .. ' and ' .. KEY
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
  return s['history-size'], s['history-ttl-ms'], s['max-payload'], once_key, once_ttl or IDEMPOTENCY_TTL_MS, tp, mkey
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

-- store appends a message to the stream key, trimmed to size, with the
-- conflation key mkey (nil: none), and relays it with the traceparent tp
-- (nil: none); it returns the id.
local function store(key, size, event, data, tp, mkey)
  local id
  if mkey then
    id = redis.call('XADD', key, 'MAXLEN', '~', size, '*', 'e', event, 'd', data, 'k', mkey)
  else
    id = redis.call('XADD', key, 'MAXLEN', '~', size, '*', 'e', event, 'd', data)
  end
  -- The live relay payload, version 2: "0<id>[ name=value]...\n<event>\n<data>".
  -- The leading zero marks the version; a node of the release before it,
  -- whose payload was "<id>\n<event>\n<data>", reads the same id (see
  -- resume's liveMessage). The attributes are k, the conflation key, and
  -- tp, the publish's traceparent, which nodes of earlier releases
  -- ignore.
  local head = '0' .. id
  if mkey then
    head = head .. ' k=' .. mkey
  end
  if tp then
    head = head .. ' tp=' .. tp
  end
  redis.call('SPUBLISH', key .. ':live', head .. '\n' .. event .. '\n' .. data)
  return id
end

-- now_ms returns Redis's clock in milliseconds.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- expire trims the stream key by age and sets it to expire when idle.
local function expire(key, ttl)
  local now = now_ms()
  redis.call('XTRIM', key, 'MINID', '~', now - ttl)
  redis.call('PEXPIRE', key, ttl)
end

-- once_digest returns what an idempotency key remembers of a message.
local function once_digest(event, data)
  return redis.sha1hex(event .. '\n' .. data)
end

local function publish(keys, args)
  if (#keys ~= 1 and #keys ~= 2) or #args < 2 or #args % 2 ~= 0 then
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
  local size, ttl, max, once_key, once_ttl, tp, mkey = settings(args, 3, true)
  if not size then
    return redis.error_reply(ttl)
  end
  if #data > max then
    return redis.error_reply('ERR edge: payload too large')
  end
  if #keys == 2 and not once_key then
    return redis.error_reply('ERR edge: a second key is only for idempotency-key: ' .. key .. ':once:KEY')
  end
  if not once_key then
    local id = store(key, size, event, data, tp, mkey)
    expire(key, ttl)
    return id
  end
  -- In the channel's slot, as the function may touch only that one.
  local once = key .. ':once:' .. once_key
  if #keys == 2 and keys[2] ~= once then
    return redis.error_reply('ERR edge: the second key must be ' .. key .. ':once:KEY, KEY the idempotency key')
  end
  local digest = once_digest(event, data)
  local seen = redis.call('GET', once)
  if seen then
    local id, was = string.match(seen, '^(%S+) (%x+)$')
    if was ~= digest then
      return redis.error_reply('ERR edge: idempotency key reused for another message')
    end
    return {id, 1}
  end
  local id = store(key, size, event, data, tp, mkey)
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
  local size, ttl, max, _, _, tp, keys = settings(args, 2 + 2 * n, false)
  if not size then
    return redis.error_reply(ttl)
  end
  local mkeys = {}
  if keys then
    -- n keys, each empty or a key: n - 1 newlines.
    local i = 0
    for k in string.gmatch(keys .. '\n', '([^\n]*)\n') do
      i = i + 1
      if i > n or (k ~= '' and not valid_key(k)) then
        i = -1
        break
      end
      mkeys[i] = k ~= '' and k or false
    end
    if i ~= n then
      return redis.error_reply('ERR edge: option ' .. KEYS .. ' must be ' .. n .. ' keys separated by newlines, each empty or 1-' .. MAX_KEY_LEN .. ' bytes of visible ASCII (0x21-0x7E)')
    end
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
    ids[#ids + 1] = store(key, size, args[i], args[i + 1], tp, mkeys[i / 2] or nil)
  end
  expire(key, ttl)
  return ids
end

-- Presence (see the top of this file).

local USAGE_JOIN = 'ERR edge: usage: FCALL edge_presence_join 1 edge:{channel} ttl-ms conn member'
local USAGE_LEAVE = 'ERR edge: usage: FCALL edge_presence_leave 1 edge:{channel} conn [node]'
local USAGE_MEMBERS = 'ERR edge: usage: FCALL edge_presence_members 1 edge:{channel} limit'
local USAGE_REFRESH = 'ERR edge: usage: FCALL edge_presence_refresh 1 edge:{channel} ttl-ms [conn member]...'

-- presence_keys returns the members' sorted set, their hash and the shard
-- channel of announcements of the stream key key.
local function presence_keys(key)
  return key .. ':members', key .. ':member-info', key .. ':presence'
end

-- presence_ttl returns v as a TTL in ms, or nil and an error.
local function presence_ttl(v)
  local ttl = positive(v)
  if not ttl or ttl > MAX_PRESENCE_TTL_MS then
    return nil, 'ERR edge: ttl-ms must be a whole number of 1 to ' .. MAX_PRESENCE_TTL_MS
  end
  return ttl
end

-- check_conn returns nil when conn is a connection id, or an error.
local function check_conn(conn)
  if #conn < 1 or #conn > MAX_CONN_LEN or not string.match(conn, '^[!-~]+$') then
    return 'ERR edge: conn must be 1-' .. MAX_CONN_LEN .. ' bytes of visible ASCII (0x21-0x7E)'
  end
  return nil
end

-- check_member returns nil when member is the JSON of conn's member, or
-- an error.
local function check_member(conn, member)
  local bad = check_conn(conn)
  if bad then
    return bad
  end
  if #member > MAX_MEMBER_LEN or string.sub(member, 1, 1) ~= '{' then
    return 'ERR edge: member must be a JSON object of at most ' .. MAX_MEMBER_LEN .. ' bytes'
  end
  local ok, m = pcall(cjson.decode, member)
  if not ok or type(m) ~= 'table' then
    return 'ERR edge: member must be a JSON object of at most ' .. MAX_MEMBER_LEN .. ' bytes'
  end
  if m.conn ~= conn then
    return 'ERR edge: the member\'s "conn" must be its conn'
  end
  for _, field in ipairs({'sub', 'info', 'node'}) do
    if m[field] ~= nil and type(m[field]) ~= 'string' then
      return 'ERR edge: the member\'s "' .. field .. '" must be a string'
    end
  end
  return nil
end

-- announce publishes a join or leave of member on the channel's presence
-- shard channel: "1 EVENT MEMBER", 1 being the format's version.
local function announce(presence, event, member)
  redis.call('SPUBLISH', presence, PRESENCE_FORMAT .. ' ' .. event .. ' ' .. member)
end

-- member_or_stub returns a member's JSON as the hash had it (false when
-- it did not), or one that only names its conn.
local function member_or_stub(member, conn)
  return member or cjson.encode({conn = conn})
end

-- keep_alive has the channel's presence keys live for twice ttl ms at
-- least: a member written now expires in ttl, and the keys outlive it
-- long enough for a sweep to find it and announce its leave.
local function keep_alive(members, info, ttl)
  for _, k in ipairs({members, info}) do
    if redis.call('PTTL', k) < 2 * ttl then -- -1: no expiry yet; -2: no key (harmless)
      redis.call('PEXPIRE', k, 2 * ttl)
    end
  end
end

-- sweep removes up to MAX_SWEEP members that expired by now and announces
-- their leaves.
local function sweep(members, info, presence, now)
  local gone = redis.call('ZRANGEBYSCORE', members, '-inf', now, 'LIMIT', 0, MAX_SWEEP)
  if #gone == 0 then
    return
  end
  local json = redis.call('HMGET', info, unpack(gone))
  redis.call('ZREM', members, unpack(gone))
  redis.call('HDEL', info, unpack(gone))
  for i, conn in ipairs(gone) do
    announce(presence, 'leave', member_or_stub(json[i], conn))
  end
end

local function presence_join(keys, args)
  if #keys ~= 1 or #args ~= 3 then
    return redis.error_reply(USAGE_JOIN)
  end
  local bad = check_key(keys[1])
  if bad then
    return redis.error_reply(bad)
  end
  local ttl, err = presence_ttl(args[1])
  if not ttl then
    return redis.error_reply(err)
  end
  local conn, member = args[2], args[3]
  bad = check_member(conn, member)
  if bad then
    return redis.error_reply(bad)
  end
  local members, info, presence = presence_keys(keys[1])
  local new = redis.call('ZADD', members, now_ms() + ttl, conn)
  redis.call('HSET', info, conn, member)
  keep_alive(members, info, ttl)
  if new == 1 then
    announce(presence, 'join', member)
  end
  return new
end

local function presence_leave(keys, args)
  if #keys ~= 1 or #args < 1 or #args > 2 then
    return redis.error_reply(USAGE_LEAVE)
  end
  local bad = check_key(keys[1]) or check_conn(args[1])
  if bad then
    return redis.error_reply(bad)
  end
  local conn, node = args[1], args[2]
  local members, info, presence = presence_keys(keys[1])
  local member = redis.call('HGET', info, conn)
  if node and member then
    local ok, m = pcall(cjson.decode, member)
    if ok and type(m) == 'table' and m.node ~= node then
      return 0 -- another node's now
    end
  end
  local was = redis.call('ZREM', members, conn)
  redis.call('HDEL', info, conn)
  if was == 1 then
    announce(presence, 'leave', member_or_stub(member, conn))
  end
  return was
end

local function presence_members(keys, args)
  if #keys ~= 1 or #args ~= 1 then
    return redis.error_reply(USAGE_MEMBERS)
  end
  local bad = check_key(keys[1])
  if bad then
    return redis.error_reply(bad)
  end
  local limit = tonumber(args[1])
  if not limit or limit < 0 or limit > MAX_MEMBERS_LIMIT or limit % 1 ~= 0 then
    return redis.error_reply('ERR edge: limit must be a whole number of 0 to ' .. MAX_MEMBERS_LIMIT)
  end
  local members, info, presence = presence_keys(keys[1])
  local now = now_ms()
  sweep(members, info, presence, now)
  -- Counted and listed among the unexpired only, so that the answer is
  -- exact even when more than one sweep's worth expired.
  local reply = {redis.call('ZCOUNT', members, '(' .. now, '+inf')}
  if limit > 0 then
    local conns = redis.call('ZRANGEBYSCORE', members, '(' .. now, '+inf', 'LIMIT', 0, limit)
    if #conns > 0 then
      local json = redis.call('HMGET', info, unpack(conns))
      for i, conn in ipairs(conns) do
        reply[#reply + 1] = member_or_stub(json[i], conn)
      end
    end
  end
  return reply
end

local function presence_refresh(keys, args)
  if #keys ~= 1 or #args < 1 or #args % 2 ~= 1 then
    return redis.error_reply(USAGE_REFRESH)
  end
  if (#args - 1) / 2 > MAX_REFRESH then
    return redis.error_reply('ERR edge: at most ' .. MAX_REFRESH .. ' members per refresh')
  end
  local bad = check_key(keys[1])
  if bad then
    return redis.error_reply(bad)
  end
  local ttl, err = presence_ttl(args[1])
  if not ttl then
    return redis.error_reply(err)
  end
  local conns = {}
  for i = 2, #args, 2 do
    bad = check_conn(args[i])
    if bad then
      return redis.error_reply(bad)
    end
    conns[#conns + 1] = args[i]
  end
  local members, info, presence = presence_keys(keys[1])
  local now = now_ms()
  -- Refreshed before the sweep: a member its node refreshes late, but
  -- before anyone swept it, stays without a leave. A member's JSON is
  -- checked (decoded) only when it is written, for a member Redis lost:
  -- a refresh of every member every few seconds would decode them all.
  local added = 0
  if #conns > 0 then
    local scores = redis.call('ZMSCORE', members, unpack(conns))
    local zadd, hset = {}, {}
    for j, conn in ipairs(conns) do
      zadd[#zadd + 1] = now + ttl
      zadd[#zadd + 1] = conn
      if not scores[j] then
        local member = args[2 * j + 1]
        bad = check_member(conn, member)
        if bad then
          return redis.error_reply(bad)
        end
        hset[#hset + 1] = conn
        hset[#hset + 1] = member
      end
    end
    redis.call('ZADD', members, unpack(zadd))
    if #hset > 0 then
      redis.call('HSET', info, unpack(hset))
      added = #hset / 2
    end
    keep_alive(members, info, ttl)
  end
  sweep(members, info, presence, now)
  return added
end

redis.register_function('edge_publish', publish)
redis.register_function('edge_publish_batch', publish_batch)
redis.register_function('edge_presence_join', presence_join)
redis.register_function('edge_presence_leave', presence_leave)
redis.register_function('edge_presence_members', presence_members)
redis.register_function('edge_presence_refresh', presence_refresh)
