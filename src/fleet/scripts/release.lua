-- pacer fleet: the end of an admitted request, on Redis's own clock.
-- KEYS[1] is the account's base key. ARGV: 1 what ("depart" | "end" |
-- "renew" | "give_back" | "cancel"), 2 grant id, 3 lease (us, for renew),
-- 4 day, 5 batch seq, 6 filled (0/1), 7 last batch before (-1: none),
-- 8 window count W, then W window keys, then 1 if the gap counts it.
--
-- depart:    its windows and the gap count it from now (never earlier).
-- end:       it is over: its concurrency lease is freed; a request that
--            never departed keeps the stamp it was admitted with.
-- renew:     its concurrency lease lasts `lease` from now.
-- give_back: it failed before the origin: its daily count and batch
--            consumption are returned, its lease freed.
-- cancel:    its client left while it waited: every consumption is
--            returned, its window and gap entries removed.

local base = KEYS[1]
local what, member = ARGV[1], ARGV[2]

-- Microsecond stamps as exact integers: Redis converts a Lua number to
-- text with 14 significant digits, which would round a stamp (16 digits)
-- to 100 us.
local function us(x) return string.format('%d', x) end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local pend, ckey = base .. ':pend', base .. ':c'

local keys = {}
local count = tonumber(ARGV[8])
for i = 1, count do keys[#keys + 1] = base .. ':w:' .. ARGV[8 + i] end
if ARGV[9 + count] == '1' then keys[#keys + 1] = base .. ':gap' end

if what == 'renew' then
  return redis.call('ZADD', ckey, 'XX', 'CH', us(now + tonumber(ARGV[3])), member)
end
if what == 'depart' then
  for _, key in ipairs(keys) do redis.call('ZADD', key, 'XX', 'GT', us(now), member) end
  redis.call('ZREM', pend, member)
  return 1
end
redis.call('ZREM', ckey, member)
redis.call('ZREM', pend, member)
if what == 'end' then return 1 end

-- give_back and cancel: the day's counts, if still the same day, and the
-- batch, if still the same batch (the admission that filled it lifts the
-- pause it started).
local names = {}
for i = 10 + count, #ARGV do names[#names + 1] = ARGV[i] end
local dkey = base .. ':d'
if tonumber(redis.call('HGET', dkey, 'day')) == tonumber(ARGV[4]) then
  local function down(field)
    if (tonumber(redis.call('HGET', dkey, field)) or 0) > 0 then redis.call('HINCRBY', dkey, field, -1) end
  end
  down('all')
  for _, name in ipairs(names) do down('a:' .. name) end
end
local seq = tonumber(ARGV[5])
local bkey = base .. ':b'
if seq >= 0 and tonumber(redis.call('HGET', bkey, 'seq')) == seq then
  local until_ms = tonumber(redis.call('HGET', bkey, 'until'))
  if ARGV[6] == '1' then
    until_ms = nil
    redis.call('HSET', bkey, 'until', '', 'last', ARGV[7] == '-1' and '' or ARGV[7])
  end
  local current = tonumber(redis.call('HGET', bkey, 'current')) or 0
  if not until_ms and current > 0 then redis.call('HSET', bkey, 'current', current - 1) end
end
if what == 'cancel' then
  for _, key in ipairs(keys) do redis.call('ZREM', key, member) end
end
return 1
