-- pacer fleet: the platform answered "too fast". KEYS[1] is the account's
-- base key. ARGV: 1 pause (ms), 2 origin status, then the paused action
-- names. A pause is extended, never shortened; answers the names whose
-- pause started now.
local base = KEYS[1]
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local until_ms = now_ms + tonumber(ARGV[1])
local key = base .. ':p'
local started = {}
for i = 3, #ARGV do
  local name = ARGV[i]
  local old = redis.call('HGET', key, name)
  local old_until, old_since = nil, nil
  if old then
    local u, s = string.match(old, '^(%-?%d+):(%-?%d+):')
    old_until, old_since = tonumber(u), tonumber(s)
  end
  if not old_until or old_until <= now_ms then
    redis.call('HSET', key, name, until_ms .. ':' .. now_ms .. ':' .. ARGV[2])
    started[#started + 1] = name
  elseif until_ms > old_until then
    redis.call('HSET', key, name, until_ms .. ':' .. old_since .. ':' .. ARGV[2])
  end
end
local ttl = redis.call('PTTL', key)
if ttl < tonumber(ARGV[1]) + 60000 then redis.call('PEXPIRE', key, tonumber(ARGV[1]) + 60000) end
return started
