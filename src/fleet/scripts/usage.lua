-- pacer fleet: an account's usage as every instance sees it. KEYS[1] is
-- the account's base key. ARGV: 1 day shift (s), 2 window count W, then W
-- pairs (window key, span us). Answers {day, counts (flat field/value
-- list, empty when the counted day is over), {current, until, last} of the
-- batch, pauses (flat name/value list), admissions in each window now}.
local base = KEYS[1]

-- Microsecond stamps as exact integers: Redis converts a Lua number to
-- text with 14 significant digits, which would round a stamp (16 digits)
-- to 100 us.
local function us(x) return string.format('%d', x) end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local now_s = tonumber(clock[1])
local shift = tonumber(ARGV[1])
local day = math.floor((now_s + shift) / 86400) * 86400 - shift
local dkey = base .. ':d'
local stored = tonumber(redis.call('HGET', dkey, 'day'))
local counts = {}
if stored and now_s >= stored and now_s < stored + 86400 then
  counts = redis.call('HGETALL', dkey)
end
local b = redis.call('HMGET', base .. ':b', 'current', 'until', 'last')
local fill, at = {}, 3
for _ = 1, tonumber(ARGV[2]) do
  local key, span = base .. ':w:' .. ARGV[at], tonumber(ARGV[at + 1])
  fill[#fill + 1] = redis.call('ZCOUNT', key, '(' .. us(now - span), '+inf')
  at = at + 2
end
return {day, counts, {b[1] or '', b[2] or '', b[3] or ''}, redis.call('HGETALL', base .. ':p'), fill}
