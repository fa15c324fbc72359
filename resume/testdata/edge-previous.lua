#!lua name=edge
local MAXLEN = 1000
local TTL_MS = 3600000
local MAX_PAYLOAD = 65536

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

redis.register_function('edge_publish', publish)
