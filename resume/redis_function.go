package resume

import "fmt"

// Key layout in Redis. A channel's keys share the hash tag {channel}, so
// they live in one cluster slot:
//
//	edge:{CHANNEL}        the Stream of the channel's messages (fields e = event, d = data)
//	edge:{CHANNEL}:live   the shard channel (SPUBLISH) that relays new messages to every node
func streamKey(channel string) string { return "edge:{" + channel + "}" }

func liveKey(channel string) string { return "edge:{" + channel + "}:live" }

// channelOfLive returns the channel of a live key, or "" for another key.
func channelOfLive(key string) string {
	const prefix, suffix = "edge:{", "}:live"
	if len(key) <= len(prefix)+len(suffix) || key[:len(prefix)] != prefix || key[len(key)-len(suffix):] != suffix {
		return ""
	}
	return key[len(prefix) : len(key)-len(suffix)]
}

// publishFunction is the name of the Redis Function that stores and relays
// a message atomically. Backends publish with one command:
//
//	FCALL edge_publish 1 edge:{CHANNEL} EVENT PAYLOAD
//
// which answers the message id. EVENT may be "" for the default type.
const publishFunction = "edge_publish"

// functionLibrary returns the Lua library the edge loads at start (FUNCTION
// LOAD REPLACE), with the retention and size limits of cfg built in. It
// validates its input as the HTTP API does, appends to the stream (trimmed
// by count with MAXLEN ~ and by age with MINID ~, expiring when idle) and
// relays id, event and payload to the live shard channel in one atomic step.
func functionLibrary(cfg RedisConfig) string {
	return fmt.Sprintf(`#!lua name=edge
local MAXLEN = %d
local TTL_MS = %d
local MAX_PAYLOAD = %d

local function publish(keys, args)
  local key = keys[1]
  if #keys ~= 1 or #args ~= 2 then
    return redis.error_reply('ERR edge: usage: FCALL edge_publish 1 edge:{channel} event payload')
  end
  local ch = string.match(key, '^edge:{([A-Za-z0-9_.:@/-]+)}$')
  if not ch or #ch > 200 then
    return redis.error_reply('ERR edge: the key must be edge:{channel}, channel 1-200 bytes of A-Z a-z 0-9 _ - . : @ /')
  end
  local event, data = args[1], args[2]
  if #event > 64 or not string.match(event, '^[A-Za-z0-9_.:@/-]*$') or event == 'gap' or event == 'disconnect' then
    return redis.error_reply('ERR edge: invalid event type')
  end
  if #data > MAX_PAYLOAD then
    return redis.error_reply('ERR edge: payload too large')
  end
  local id = redis.call('XADD', key, 'MAXLEN', '~', MAXLEN, '*', 'e', event, 'd', data)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('XTRIM', key, 'MINID', '~', now - TTL_MS)
  redis.call('PEXPIRE', key, TTL_MS)
  redis.call('SPUBLISH', key .. ':live', id .. '\n' .. event .. '\n' .. data)
  return id
end

redis.register_function('%s', publish)
`, cfg.HistorySize, cfg.HistoryTTL.Milliseconds(), cfg.MaxPayload, publishFunction)
}
