-- pacer fleet: the instances that are alive and their config digests.
-- KEYS[1] is the fleet's instance hash (instance id to "<seen ms> <digest
-- text>"). ARGV: 1 this instance's id, 2 its digest text, 3 how long an
-- instance counts as alive after it was last seen (ms). Answers the
-- digest texts of the other live instances; long-gone ones are removed.
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local alive = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], now_ms .. ' ' .. ARGV[2])
local others = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local seen, digest = string.match(all[i + 1], '^(%d+) (.*)$')
  seen = tonumber(seen)
  if not seen or now_ms - seen > 60 * alive then
    redis.call('HDEL', KEYS[1], all[i])
  elseif all[i] ~= ARGV[1] and now_ms - seen <= alive then
    others[#others + 1] = digest
  end
end
return others
