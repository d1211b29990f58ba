-- pacer fleet: upstream cooldowns shared by every instance. KEYS[1] is
-- the fleet's cooldown hash (upstream identity to the Unix ms its
-- cooldown ends). ARGV: pairs (identity, ms left) of this instance's
-- running cooldowns, each kept when it ends later than the one stored.
-- Answers the running cooldowns as pairs (identity, ms left); ended ones
-- are removed.
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
for i = 1, #ARGV, 2 do
  local until_ms = now_ms + tonumber(ARGV[i + 1])
  local stored = tonumber(redis.call('HGET', KEYS[1], ARGV[i]))
  if not stored or stored < until_ms then
    redis.call('HSET', KEYS[1], ARGV[i], until_ms)
  end
end
local running = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local left = tonumber(all[i + 1]) - now_ms
  if left > 0 then
    running[#running + 1] = all[i]
    running[#running + 1] = left
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return running
