"""The Lua scripts of the Redis broker: every write to history is one atomic script.

Layout (`P` is the key prefix). Fixed keys, one each:
- `P:epoch` names the life of the history; any script creates it when it is missing, so
  it changes exactly when Redis lost its data.
- `P:seq` is the broker-wide seq counter.
- `P:feed` holds the last appends in seq order (field `p` epoch, `s` first seq, `e` one line
  "CHANNEL OFFSET SEVERITY DATA" per event): the one stream every instance reads; trimmed
  to the feed bound.
- `P:forgotten` is the newest seq of any channel forgotten: a cursor older than it may have
  lost entries nobody can count any more (an "expired" gap).

Keys that come and go, each with a TTL set by the append that writes it (W is the history
window, max age; L = (GAP_MEMORY + 1) x W, a channel's record life):
- `P:h:CHANNEL` is a channel's history: a stream whose entry ids are `SEQ-MS` (the seq first,
  so a cursor is a stream position; the append time second, for trimming by age) with one
  field `e` = "OFFSET SEVERITY DATA". TTL W: it goes with its newest entry.
- `P:s:CHANNEL` is a channel's ledger: one record per append, id `LASTSEQ-LASTOFFSET`, field
  `s` = the seqs that append gave the channel, the newest 2 x max entries records. Offsets
  are dense, so the first record after a cursor and the oldest entry kept count exactly what
  the cursor lost, however it was lost (count, age or the key's expiry). TTL L: it outlives
  the history by GAP_MEMORY windows; its last record is the channel's next offset, and once
  it is gone the channel is forgotten and starts again at offset 0.
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

# KEYS: epoch, seq, feed, channels, last, forgotten, dedup, window, then (history, ledger)
#       per distinct channel.
# ARGV: candidate epoch, max entries, max age ms, record life ms, ledger max, prune max,
#       feed max, use dedup (0/1), dedup ms, dedup batches, producer's sequence,
#       entry count, channel count C, C pairs (channel name, its entry count),
#       then the entries, one line each: "CHANNEL_NUMBER SEVERITY CUT DATA", where DATA is
#       the JSON line without its offset, which belongs after its first CUT bytes.
APPEND = (
    _NOW
    + _TRIM
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
local names, next_offset, seqs = {}, {}, {}
for c = 1, nchan do
  names[c] = ARGV[12 + 2 * c]
  local record = redis.call('XREVRANGE', KEYS[8 + 2 * c], '+', '-', 'COUNT', 1)[1]
  next_offset[c] = record and tonumber(string.match(record[1], '-(%d+)$')) + 1 or 0
  seqs[c] = {}
end
local seq, offsets, lines = first, {}, {}
for c, severity, cut, data in string.gmatch(ARGV[14 + 2 * nchan], '(%d+) (%d+) (%d+) ([^\\n]*)') do
  c, cut = tonumber(c), tonumber(cut)
  local offset = string.format('%d', next_offset[c])
  next_offset[c] = next_offset[c] + 1
  local record = offset .. ' ' .. severity .. ' '
    .. string.sub(data, 1, cut) .. offset .. string.sub(data, cut + 1)
  local id = string.format('%d', seq)
  redis.call('XADD', KEYS[7 + 2 * c], id .. '-' .. ms, 'e', record)
  seqs[c][#seqs[c] + 1] = id
  offsets[#offsets + 1] = offset
  lines[#lines + 1] = names[c] .. ' ' .. record
  seq = seq + 1
end
for c = 1, nchan do
  local hkey, lkey, mine = KEYS[7 + 2 * c], KEYS[8 + 2 * c], seqs[c]
  trim(hkey, tonumber(ARGV[2]), now - max_age)
  redis.call('PEXPIRE', hkey, max_age)
  local last = mine[#mine]
  redis.call('XADD', lkey, 'MAXLEN', '~', ARGV[5], last .. '-' .. (next_offset[c] - 1),
    's', table.concat(mine, ' '))
  redis.call('PEXPIRE', lkey, life)
  redis.call('ZADD', KEYS[4], now, names[c])
  redis.call('HSET', KEYS[5], names[c], last .. ' ' .. ms)
end
if n > 0 then
  redis.call('PEXPIRE', KEYS[4], life)
  redis.call('PEXPIRE', KEYS[5], life)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*',
    'p', epoch, 's', string.format('%d', first), 'e', table.concat(lines, '\\n'))
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

# One channel's events in (after, upto], oldest first, after trimming by age, and what it
# lost after `after`.
# KEYS: history, ledger, last. ARGV: channel, after, upto, max entries, max age ms.
# Returns {lost, newest lost seq, exact (1/0), id, record, id, record, ...}: not exact when
# the ledger no longer reaches back to the cursor (lost is then a lower bound) or the
# channel was forgotten (its ledger expired: newest is its last seq).
READ = (
    _NOW
    + _TRIM
    + """
local function offset_of(id) return tonumber(string.match(id, '-(%d+)$')) end
local function seq_of(id) return tonumber(string.match(id, '^(%d+)')) end
local after = tonumber(ARGV[2])
local newest_record = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
if not newest_record then
  local last = redis.call('HGET', KEYS[3], ARGV[1])
  if last and seq_of(last) > after then return {0, seq_of(last), 0} end
  return {0, 0, 1}
end
trim(KEYS[1], tonumber(ARGV[4]), now_ms() - tonumber(ARGV[5]))
local out = {0, 0, 1}
local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
local first_kept = offset_of(newest_record[1]) + 1
if oldest then first_kept = tonumber(string.match(oldest[2][2], '^(%d+)')) end
-- The first append after the cursor: the offset of the first entry the cursor had not seen.
local record = redis.call('XRANGE', KEYS[2], string.format('%d', after + 1), '+', 'COUNT', 1)[1]
if record then
  local seqs = {}
  for seq in string.gmatch(record[2][2], '%d+') do seqs[#seqs + 1] = tonumber(seq) end
  local seen = 0
  while seqs[seen + 1] <= after do seen = seen + 1 end
  local first_offset = offset_of(record[1]) - #seqs + 1
  local first_unseen = first_offset + seen
  if first_kept > first_unseen then
    out[1] = first_kept - first_unseen
    -- The newest lost seq: the seq of offset first_kept - 1.
    if not oldest then
      out[2] = seq_of(newest_record[1])
    else
      local from = string.format('%d', seq_of(oldest[1]))
      local holder = redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', 1)[1]
      local last_offset, held = offset_of(holder[1]), {}
      for seq in string.gmatch(holder[2][2], '%d+') do held[#held + 1] = seq end
      local at = first_kept - 1 - (last_offset - #held + 1)
      if at >= 0 then
        out[2] = tonumber(held[at + 1])
      else
        local before = redis.call('XREVRANGE', KEYS[2], '(' .. holder[1], '-', 'COUNT', 1)[1]
        out[2] = before and seq_of(before[1]) or seq_of(oldest[1]) - 1
      end
    end
  end
  -- Older records were dropped and the cursor predates them: some losses are uncounted.
  if seen == 0 and first_offset > 0 then
    local oldest_record = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
    if oldest_record[1] == record[1] then out[3] = 0 end
  end
end
for _, item in ipairs(redis.call('XRANGE', KEYS[1], string.format('%d', after + 1), ARGV[3])) do
  out[#out + 1] = item[1]
  out[#out + 1] = item[2][2]
end
return out
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
