"""The Lua scripts of the Redis broker: every write to history is one atomic script.

Layout (`P` is the key prefix). Fixed keys, one each:
- `P:epoch` names the life of the history; any script creates it when it is missing, so
  it changes exactly when Redis lost its data.
- `P:seq` is the broker-wide seq counter.
- `P:feed` holds the last appends in seq order (field `p` epoch, `s` first seq, `e` one line
  "CHANNEL OFFSET SEVERITY DATA" per event, `b` the bytes of every `e` so far): the one
  stream every instance reads, bounded by entries (MAXLEN ~) and by the bytes of its `e`.
- `P:forgotten` is the newest seq of any channel forgotten: a cursor older than it may have
  lost entries nobody can count any more (an "expired" gap).

Keys that come and go, each with a TTL set by the append that writes it (W is the history
window, max age; L = (GAP_MEMORY + 1) x W, a channel's record life):
- `P:h:CHANNEL` is a channel's history: a stream whose entry ids are `SEQ-MS` (the seq first,
  so a cursor is a stream position; the append time second, for trimming by age) with one
  field `e` = "OFFSET SEVERITY DATA". TTL W: it goes with its newest entry.
- `P:s:CHANNEL` is a channel's ledger: a list, one record per append, the newest 2 x max
  entries: "LASTOFFSET RUN RUN ...", the seqs that append gave the channel as runs `A` or
  `A-B` (a batch's entries to one channel are usually consecutive). Offsets are dense, so
  the first record after a cursor and the oldest entry kept count exactly what the cursor
  lost, however it was lost (count, age or the key's expiry). TTL L: it outlives the
  history by GAP_MEMORY windows; its last record gives the channel's next offset, and once
  it is gone the channel is forgotten and starts again at offset 0. (A list, not a stream:
  Redis 7.0 gives every stream a 4 KB listpack, a list holds a one-entry record in ~150 B.)
- `P:channels` (sorted set: channel -> last append ms) and `P:last` (hash: channel ->
  "LASTSEQ LASTMS") are the registry of channels whose ledger may still exist: appends prune
  the names older than L (raising `P:forgotten`), and both expire whole L after the last
  append, when every ledger has gone too. Gateways load their channel index from `P:last`.
- `P:d:PRODUCER` (hash: sequence -> "MS RESULT") and `P:w:PRODUCER` (sorted set: sequence ->
  first seq) are a producer's de-duplication window: its newest dedup-batches results, each
  recognised for dedup-seconds; both expire whole dedup-seconds after its last batch.

Nothing else is written, so nothing in Redis grows with the channels or producers ever used.
DATA is the event's JSON line, which never holds a raw newline or starts a field early, so
the records split on the first spaces and the feed on newlines. The scripts touch only keys
passed in KEYS (Redis Cluster is still not supported: an append spans many channels).
"""

from __future__ import annotations


class Keys:
    """The key names of the layout above, for the key prefix `P`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.epoch = f"{prefix}:epoch"
        self.seq = f"{prefix}:seq"
        self.feed = f"{prefix}:feed"
        self.forgotten = f"{prefix}:forgotten"
        self.channels = f"{prefix}:channels"
        self.last = f"{prefix}:last"

    def history(self, channel: str) -> str:
        return f"{self.prefix}:h:{channel}"

    def ledger(self, channel: str) -> str:
        return f"{self.prefix}:s:{channel}"

    def dedup(self, producer: str) -> str:
        return f"{self.prefix}:d:{producer}"

    def window(self, producer: str) -> str:
        return f"{self.prefix}:w:{producer}"


_NOW = """
local function now_ms()
  local now = redis.call('TIME')
  return now[1] * 1000 + math.floor(now[2] / 1000)
end
"""

_TRIM = """
-- Drop the oldest entries of a history past max_len or older than min_ms (the ledger keeps
-- what is needed to count them); an emptied history is deleted.
local function trim(hkey, max_len, min_ms)
  if redis.call('XLEN', hkey) > max_len then redis.call('XTRIM', hkey, 'MAXLEN', max_len) end
  local start, count = '-', 1
  while true do
    local page = redis.call('XRANGE', hkey, start, '+', 'COUNT', count)
    for i, item in ipairs(page) do
      if tonumber(string.match(item[1], '-(%d+)$')) >= min_ms then
        if start ~= '-' or i > 1 then redis.call('XTRIM', hkey, 'MINID', item[1]) end
        return
      end
    end
    if #page < count then
      if start ~= '-' or #page > 0 then redis.call('DEL', hkey) end
      return
    end
    start, count = '(' .. page[#page][1], 100
  end
end
"""

_LEDGER = """
-- Ledger records: "LASTOFFSET RUN RUN ..." with runs "A" or "A-B" of seqs.
local function last_seq(record) return tonumber(string.match(record, '(%d+)$')) end
local function last_offset(record) return tonumber(string.match(record, '^(%d+)')) end
-- The record's seqs, in order, as {first, last} runs, and how many seqs they hold.
local function runs_of(record)
  local runs, size = {}, 0
  for run in string.gmatch(string.match(record, ' (.*)$'), '%S+') do
    local a, b = string.match(run, '^(%d+)-?(%d*)$')
    a = tonumber(a)
    b = tonumber(b) or a
    runs[#runs + 1] = {a, b}
    size = size + b - a + 1
  end
  return runs, size
end
-- The index (0-based) and record of the first record with a seq above `seq`, or nil.
local function first_after(lkey, len, seq)
  local lo, hi = 0, len
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if last_seq(redis.call('LINDEX', lkey, mid)) > seq then hi = mid else lo = mid + 1 end
  end
  if lo == len then return nil, nil end
  return lo, redis.call('LINDEX', lkey, lo)
end
"""

_EPOCH = """
-- The epoch, created when missing (Redis lost its data, or this is the first start).
local function epoch_of(key, candidate)
  local epoch = redis.call('GET', key)
  if not epoch then
    epoch = candidate
    redis.call('SET', key, epoch)
  end
  return epoch
end
"""

_FORGET = """
-- Forget at most `max` channels whose last append is older than `cutoff` ms (their ledgers
-- have expired), raising the forgotten horizon to their newest seq. A registry that expired
-- whole means every channel before it is forgotten: the horizon is then the seq counter.
local function forget(registry, last, forgotten, seqkey, cutoff, max)
  local horizon = tonumber(redis.call('GET', forgotten) or '0')
  local newest = horizon
  if redis.call('EXISTS', registry) == 0 then
    newest = math.max(newest, tonumber(redis.call('GET', seqkey) or '0'))
  else
    local names = redis.call('ZRANGE', registry, '-inf', '(' .. cutoff, 'BYSCORE', 'LIMIT', 0, max)
    if #names > 0 then
      for _, value in ipairs(redis.call('HMGET', last, unpack(names))) do
        if value then newest = math.max(newest, tonumber(string.match(value, '^(%d+)'))) end
      end
      redis.call('ZREM', registry, unpack(names))
      redis.call('HDEL', last, unpack(names))
    end
  end
  if newest > horizon then redis.call('SET', forgotten, string.format('%d', newest)) end
  return newest
end
"""

_FEED = """
-- A feed entry's `b` (the bytes of every `e` up to its own; nil if written without it) and
-- the bytes of its own `e`.
local function feed_bytes(fields)
  local b, e = nil, 0
  for i = 1, #fields, 2 do
    if fields[i] == 'b' then b = tonumber(fields[i + 1]) end
    if fields[i] == 'e' then e = #fields[i + 1] end
  end
  return b, e
end

-- Drop the oldest feed entries whose bytes lie below `floor`; never the newest.
local function trim_feed(fkey, floor, newest)
  if floor <= 0 then return end
  local start = '-'
  while true do
    local page = redis.call('XRANGE', fkey, start, newest, 'COUNT', 4)
    for _, item in ipairs(page) do
      local b, e = feed_bytes(item[2])
      if item[1] == newest or (b ~= nil and b - e >= floor) then
        redis.call('XTRIM', fkey, 'MINID', item[1])
        return
      end
    end
    start = '(' .. page[#page][1]
  end
end
"""

# KEYS: epoch, seq, feed, channels, last, forgotten, dedup, window, then (history, ledger)
#       per distinct channel.
# ARGV: candidate epoch, max entries, max age ms, record life ms, ledger max, prune max,
#       feed max, use dedup (0/1), dedup ms, dedup batches, producer's sequence,
#       entry count, channel count C, C pairs (channel name, its entry count),
#       then the entries, one line each: "CHANNEL_NUMBER SEVERITY CUT DATA", where DATA is
#       the JSON line without its offset, which belongs after its first CUT bytes; last the
#       feed's max bytes.
APPEND = (
    _NOW
    + _TRIM
    + _LEDGER
    + _FEED
    + _EPOCH
    + _FORGET
    + """
local epoch = epoch_of(KEYS[1], ARGV[1])
local now = now_ms()
local max_age, life = tonumber(ARGV[3]), tonumber(ARGV[4])
if ARGV[8] == '1' then
  local seen = redis.call('HGET', KEYS[7], ARGV[11])
  if seen then
    local at, result = string.match(seen, '^(%d+) (.*)$')
    if tonumber(at) >= now - tonumber(ARGV[9]) then return {epoch, 1, result} end
  end
end
forget(KEYS[4], KEYS[5], KEYS[6], KEYS[2], now - life, tonumber(ARGV[6]))
local n, nchan = tonumber(ARGV[12]), tonumber(ARGV[13])
local ms = string.format('%d', now)
local first = redis.call('INCRBY', KEYS[2], n) - n + 1
local names, next_offset, runs = {}, {}, {}
for c = 1, nchan do
  names[c] = ARGV[12 + 2 * c]
  local record = redis.call('LINDEX', KEYS[8 + 2 * c], -1)
  next_offset[c] = record and last_offset(record) + 1 or 0
  runs[c] = {}
end
local seq, offsets, lines = first, {}, {}
for c, severity, cut, data in string.gmatch(ARGV[14 + 2 * nchan], '(%d+) (%d+) (%d+) ([^\\n]*)') do
  c, cut = tonumber(c), tonumber(cut)
  local offset = string.format('%d', next_offset[c])
  next_offset[c] = next_offset[c] + 1
  local record = offset .. ' ' .. severity .. ' '
    .. string.sub(data, 1, cut) .. offset .. string.sub(data, cut + 1)
  redis.call('XADD', KEYS[7 + 2 * c], string.format('%d-', seq) .. ms, 'e', record)
  local mine = runs[c]
  if #mine > 0 and mine[#mine][2] == seq - 1 then
    mine[#mine][2] = seq
  else
    mine[#mine + 1] = {seq, seq}
  end
  offsets[#offsets + 1] = offset
  lines[#lines + 1] = names[c] .. ' ' .. record
  seq = seq + 1
end
for c = 1, nchan do
  local hkey, lkey, parts = KEYS[7 + 2 * c], KEYS[8 + 2 * c], {}
  trim(hkey, tonumber(ARGV[2]), now - max_age)
  redis.call('PEXPIRE', hkey, max_age)
  parts[1] = string.format('%d', next_offset[c] - 1)
  for i, run in ipairs(runs[c]) do
    parts[i + 1] = run[1] == run[2] and string.format('%d', run[1])
      or string.format('%d-%d', run[1], run[2])
  end
  if redis.call('RPUSH', lkey, table.concat(parts, ' ')) > tonumber(ARGV[5]) then
    redis.call('LTRIM', lkey, -tonumber(ARGV[5]), -1)
  end
  redis.call('PEXPIRE', lkey, life)
  local last = string.format('%d', runs[c][#runs[c]][2])
  redis.call('ZADD', KEYS[4], now, names[c])
  redis.call('HSET', KEYS[5], names[c], last .. ' ' .. ms)
end
if n > 0 then
  redis.call('PEXPIRE', KEYS[4], life)
  redis.call('PEXPIRE', KEYS[5], life)
  local line = table.concat(lines, '\\n')
  local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)[1]
  local total = #line + ((last and feed_bytes(last[2])) or 0)
  local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*',
    'p', epoch, 's', string.format('%d', first), 'e', line, 'b', string.format('%d', total))
  trim_feed(KEYS[3], total - tonumber(ARGV[15 + 2 * nchan]), id)
end
local result = string.format('%d', first)
if n > 0 then result = result .. ' ' .. table.concat(offsets, ' ') end
if ARGV[8] == '1' then
  redis.call('HSET', KEYS[7], ARGV[11], ms .. ' ' .. result)
  redis.call('ZADD', KEYS[8], first, ARGV[11])
  local excess = redis.call('ZCARD', KEYS[8]) - tonumber(ARGV[10])
  if excess > 0 then
    local evicted = redis.call('ZPOPMIN', KEYS[8], excess)
    for i = 1, #evicted, 2 do redis.call('HDEL', KEYS[7], evicted[i]) end
  end
  redis.call('PEXPIRE', KEYS[7], ARGV[9])
  redis.call('PEXPIRE', KEYS[8], ARGV[9])
end
return {epoch, 0, result}
"""
)

# Where a read after `after` starts on each of many channels, after trimming by age, and
# what each lost after `after` (the events themselves are read by PAGE, a page at a time).
# KEYS: last, then (history, ledger) per channel. ARGV: after, upto, max entries, max age
# ms, then the channel names. Returns one string per channel (one reply item: parsing
# items is most of a client's cost): "LOST NEWEST EXACT NEXT OFFSET": NEWEST is the newest
# lost seq; EXACT (1/0) is 0 when the ledger no longer reaches back to the cursor (LOST is
# then a lower bound) or the channel was forgotten (its ledger expired: NEWEST is its last
# seq); NEXT and OFFSET are the seq and offset of its first entry in (after, upto] (0 0:
# none).
READ = (
    _NOW
    + _TRIM
    + _LEDGER
    + """
local function seq_of(id) return tonumber(string.match(id, '^(%d+)')) end
local after, upto = tonumber(ARGV[1]), ARGV[2]
local max_len, min_ms = tonumber(ARGV[3]), now_ms() - tonumber(ARGV[4])

-- The newest lost seq: that of offset `offset`, in the record holding the oldest entry
-- kept, or the record before it.
local function seq_at(lkey, len, offset, oldest)
  local i, holder = first_after(lkey, len, seq_of(oldest[1]) - 1)
  local held, count = runs_of(holder)
  local want = offset - (last_offset(holder) - count + 1)
  if want < 0 then
    if i > 0 then return last_seq(redis.call('LINDEX', lkey, i - 1)) end
    return seq_of(oldest[1]) - 1
  end
  for _, run in ipairs(held) do
    if want <= run[2] - run[1] then return run[1] + want end
    want = want - (run[2] - run[1] + 1)
  end
end

local function read(hkey, lkey, name)
  local len = redis.call('LLEN', lkey)
  if len == 0 then
    local last = redis.call('HGET', KEYS[1], name)
    if last and seq_of(last) > after then return string.format('0 %d 0 0 0', seq_of(last)) end
    return '0 0 1 0 0'
  end
  trim(hkey, max_len, min_ms)
  local out = {0, 0, 1}
  local newest = redis.call('LINDEX', lkey, -1)
  local oldest = redis.call('XRANGE', hkey, '-', '+', 'COUNT', 1)[1]
  local first_kept = last_offset(newest) + 1
  if oldest then first_kept = tonumber(string.match(oldest[2][2], '^(%d+)')) end
  -- The first append after the cursor: the offset of the first entry it had not seen.
  local at, record = first_after(lkey, len, after)
  if record then
    local runs, size = runs_of(record)
    local seen = 0
    for _, run in ipairs(runs) do
      seen = seen + math.max(0, math.min(run[2], after) - run[1] + 1)
    end
    local first_offset = last_offset(record) - size + 1
    local first_unseen = first_offset + seen
    if first_kept > first_unseen then
      out[1] = first_kept - first_unseen
      out[2] = oldest and seq_at(lkey, len, first_kept - 1, oldest) or last_seq(newest)
    end
    -- Older records were dropped and the cursor predates them: some losses are uncounted.
    if at == 0 and seen == 0 and first_offset > 0 then out[3] = 0 end
  end
  local head = string.format('%d %d %d', out[1], out[2], out[3])
  local first = redis.call('XRANGE', hkey, string.format('%d', after + 1), upto, 'COUNT', 1)[1]
  if not first then return head .. ' 0 0' end
  local seq, offset = string.match(first[1], '^(%d+)'), string.match(first[2][2], '^(%d+)')
  return head .. ' ' .. seq .. ' ' .. offset
end

local replies = {}
for c = 1, #ARGV - 4 do
  replies[c] = read(KEYS[2 * c], KEYS[2 * c + 1], ARGV[4 + c])
end
return replies
"""
)

# The forgotten horizon, after forgetting what is due (a replay reads it after its READs).
# KEYS: channels, last, forgotten, seq. ARGV: record life ms, prune max.
HORIZON = (
    _NOW
    + _FORGET
    + """
return forget(KEYS[1], KEYS[2], KEYS[3], KEYS[4], now_ms() - tonumber(ARGV[1]), tonumber(ARGV[2]))
"""
)

# Where a reader starts: the epoch, the newest seq and the feed's last id, read together.
# KEYS: epoch, seq, feed. ARGV: candidate epoch.
POSITION = (
    _EPOCH
    + """
local epoch = epoch_of(KEYS[1], ARGV[1])
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local last_id = '0-0'
if #last > 0 then last_id = last[1][1] end
return {epoch, redis.call('GET', KEYS[2]) or '0', last_id}
"""
)
