-- pacer fleet admission (SPEC section 4 and 10): checks every limit of one
-- request of one account and commits all of them or none, on Redis's own
-- clock. Every key is the account's base key KEYS[1] (`<prefix>{<id>}`)
-- plus a suffix, so one script touches one Cluster slot.
--
-- ARGV: 1 mode ("admit" | "confirm"), 2 grant id, 3 longest wait (us),
-- 4 lease (us), 5 day shift (s), 6 limited (0/1), 7 concurrent_limit
-- (0: none), 8 gap span (us, 0: none), 9 batch size (0: none), 10 batch
-- pause (ms), 11 window count W, then W triples (window key, N, span us),
-- then the daily count D and D pairs (field, cap), then the name count K
-- and K action names the request matched.
--
-- "admit" answers {1, start, now, day, batch_seq, filled, last_before,
-- hold} when admitted to start at `start` (us; now, or later when it must
-- wait), {0, kind, index, retry_us, extra...} when refused, {2} when
-- concurrent_limit is full (look again). "confirm" re-places an admitted
-- request that waited for its start, counting every departure since:
-- {1, start, now} (it may go when start <= now).

local base = KEYS[1]
local mode, member = ARGV[1], ARGV[2]
local longest, lease = tonumber(ARGV[3]), tonumber(ARGV[4])
local shift, limited = tonumber(ARGV[5]), ARGV[6] == '1'
local concurrency, gap = tonumber(ARGV[7]), tonumber(ARGV[8])
local batch_size, batch_pause = tonumber(ARGV[9]), tonumber(ARGV[10])

-- Microsecond stamps as exact integers: Redis converts a Lua number to
-- text with 14 significant digits, which would round a stamp (16 digits)
-- to 100 us.
local function us(x) return string.format('%d', x) end

local windows, at = {}, 12
for _ = 1, tonumber(ARGV[11]) do
  windows[#windows + 1] = { key = base .. ':w:' .. ARGV[at], n = tonumber(ARGV[at + 1]), span = tonumber(ARGV[at + 2]) }
  at = at + 3
end
if limited and gap > 0 then
  windows[#windows + 1] = { key = base .. ':gap', n = 1, span = gap, gap = true }
end
local daily = {}
local count = tonumber(ARGV[at])
at = at + 1
for _ = 1, count do
  daily[#daily + 1] = { field = ARGV[at], cap = tonumber(ARGV[at + 1]) }
  at = at + 2
end
local names = {}
count = tonumber(ARGV[at])
at = at + 1
for _ = 1, count do
  names[#names + 1] = ARGV[at]
  at = at + 1
end

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local now_ms = math.floor(now / 1000)
local now_s = tonumber(clock[1])
local pend = base .. ':pend'

-- The earliest start every window allows: after the latest entry of each
-- (first come, first served among the requests a window holds) and at
-- least its span after its N-th latest. An entry not yet departed counts
-- as departing now at the earliest.
local pending = {}
for _, m in ipairs(redis.call('ZRANGE', pend, 0, -1)) do pending[m] = true end

-- `ahead`: only entries placed at or before it count (a confirmation
-- looks at the requests ahead of it, not at those queued behind it).
local function earliest(window, ahead)
  redis.call('ZREMRANGEBYSCORE', window.key, '-inf', us(now - window.span - 300000000))
  local seen, stamps = {}, {}
  local top = redis.call('ZREVRANGEBYSCORE', window.key, ahead == '+inf' and ahead or us(ahead), '-inf', 'WITHSCORES', 'LIMIT', 0, window.n)
  for i = 1, #top, 2 do
    local m, s = top[i], tonumber(top[i + 1])
    if pending[m] and s < now then s = now end
    seen[m] = true
    stamps[#stamps + 1] = s
  end
  for m in pairs(pending) do
    if not seen[m] then
      local s = redis.call('ZSCORE', window.key, m)
      if s and (ahead == '+inf' or tonumber(s) <= ahead) then
        s = tonumber(s)
        if s < now then s = now end
        stamps[#stamps + 1] = s
      end
    end
  end
  table.sort(stamps, function(a, b) return a > b end)
  local start = now
  if stamps[1] and stamps[1] > start then start = stamps[1] end
  local nth = stamps[window.n]
  if nth and nth + window.span > start then start = nth + window.span end
  return start
end

local function place(ahead)
  local start, hold = now, 0
  for i, window in ipairs(windows) do
    local s = earliest(window, ahead)
    if s > start then start, hold = s, i end
  end
  return start, hold
end

local function expire_at(key, ms)
  redis.call('PEXPIRE', key, math.ceil(ms))
end

local function stamp(start)
  for _, window in ipairs(windows) do
    redis.call('ZADD', window.key, us(start), member)
    expire_at(window.key, (start - now + window.span) / 1000 + 300000)
  end
  redis.call('ZADD', pend, us(start), member)
  expire_at(pend, (start - now) / 1000 + 3600000)
end

if mode == 'confirm' then
  local placed = redis.call('ZSCORE', pend, member)
  if placed == false then
    return {1, now, now}
  end
  pending[member] = nil
  for _, window in ipairs(windows) do redis.call('ZREM', window.key, member) end
  local start = place(tonumber(placed))
  stamp(start)
  return {1, start, now}
end

-- Platform pauses of a matched action, or of `all`: refused in any mode.
local pauses = base .. ':p'
names[#names + 1] = 'all'
for i, name in ipairs(names) do
  local p = redis.call('HGET', pauses, name)
  if p then
    local until_ms, since_ms, status = string.match(p, '^(%-?%d+):(%-?%d+):(%d+)$')
    until_ms, since_ms = tonumber(until_ms), tonumber(since_ms)
    if until_ms and until_ms > now_ms then
      return {0, 'backoff', name, tonumber(status), until_ms - since_ms, until_ms - now_ms}
    end
  end
end
names[#names] = nil

-- Daily caps: the day rolls over at the policy's reset; a changed reset
-- keeps the counts of a day still running.
local dkey = base .. ':d'
local day = math.floor((now_s + shift) / 86400) * 86400 - shift
local stored = tonumber(redis.call('HGET', dkey, 'day'))
if stored ~= day then
  if not (stored and now_s >= stored and now_s < stored + 86400) then
    redis.call('DEL', dkey)
  end
  redis.call('HSET', dkey, 'day', day)
end
for i, rule in ipairs(daily) do
  local count = tonumber(redis.call('HGET', dkey, rule.field)) or 0
  if count >= rule.cap then
    return {0, 'daily', i, (day + 86400 - now_s) * 1000000}
  end
end

-- The batch: a pause that is over starts the next batch at 0; a batch at
-- or past its size (lowered below it) is full.
local bkey = base .. ':b'
local batch = nil
if limited and batch_size > 0 then
  local b = redis.call('HMGET', bkey, 'current', 'until', 'last', 'seq')
  batch = { current = tonumber(b[1]) or 0, until_ms = tonumber(b[2]), last = tonumber(b[3]), seq = tonumber(b[4]) or 0 }
  if batch.until_ms and batch.until_ms <= now_ms then
    batch.current, batch.until_ms, batch.seq = 0, nil, batch.seq + 1
  end
  if batch.current >= batch_size and not batch.until_ms then
    batch.until_ms, batch.last = now_ms + batch_pause, now_ms
  end
  if batch.current > batch_size then batch.current = batch_size end
  if batch.until_ms and batch.until_ms > now_ms then
    redis.call('HSET', bkey, 'current', batch.current, 'until', batch.until_ms, 'last', batch.last or '', 'seq', batch.seq)
    return {0, 'batch', 0, (batch.until_ms - now_ms) * 1000}
  end
end

-- concurrent_limit: leases of live requests, renewed while they live.
local ckey = base .. ':c'
if concurrency > 0 then
  redis.call('ZREMRANGEBYSCORE', ckey, '-inf', us(now))
  if redis.call('ZCARD', ckey) >= concurrency then
    return {2}
  end
end

local start, hold = place('+inf')
if start - now > longest then
  return {0, 'window', hold, start - now}
end

-- Commit everything.
stamp(start)
if concurrency > 0 then
  redis.call('ZADD', ckey, us(now + lease), member)
  expire_at(ckey, lease / 1000 + 60000)
end
redis.call('HINCRBY', dkey, 'all', 1)
for _, name in ipairs(names) do redis.call('HINCRBY', dkey, 'a:' .. name, 1) end
expire_at(dkey, 2 * 86400000)
local seq, filled, last_before = -1, 0, -1
if batch then
  seq, last_before = batch.seq, batch.last or -1
  batch.current = batch.current + 1
  if batch.current >= batch_size then
    batch.until_ms, batch.last, filled = now_ms + batch_pause, now_ms, 1
  end
  redis.call('HSET', bkey, 'current', batch.current, 'until', batch.until_ms or '', 'last', batch.last or '', 'seq', batch.seq)
  expire_at(bkey, batch_pause + 2 * 86400000)
end
return {1, start, now, day, seq, filled, last_before, hold}
