"""The Lua scripts of the Redis broker: every write to history is one atomic script.

Layout (`P` is the key prefix):
- `P:epoch` names the life of the history; any script creates it when it is missing, so
  it changes exactly when Redis lost its data.
- `P:seq` is the broker-wide seq counter; `P:offsets` maps channel -> next offset (and so
  is the set of channel names).
- `P:h:CHANNEL` is a channel's history: a stream whose entry ids are `SEQ-MS` (the seq first,
  so a cursor is a stream position; the append time second, for trimming by age) with one
  field `e` = "OFFSET SEVERITY DATA".
- `P:t:CHANNEL` records what trimming removed, one entry per trim: id `LASTSEQ-LASTOFFSET`,
  field `s` = the removed seqs, so a replay counts exactly what a cursor lost.
- `P:feed` holds every append in seq order (field `p` epoch, `s` first seq, `e` one line
  "CHANNEL OFFSET SEVERITY DATA" per event, `b` the bytes of every `e` so far): the one
  stream every instance reads, bounded by entries (MAXLEN ~) and by the bytes of its `e`.
- `P:d:PRODUCER:SEQUENCE` is the first result of a de-duplication key, with a TTL.

DATA is the event's JSON line, which never holds a raw newline or starts a field early, so
the records split on the first spaces and the feed on newlines.
"""

from __future__ import annotations

_TRIM = """
-- Drop the oldest entries of a history past max_len or older than min_ms; record their seqs.
local function trim(hkey, tkey, max_len, min_ms, tomb_max)
  local excess = redis.call('XLEN', hkey) - max_len
  local seqs, last = {}, nil
  local start, count = '-', math.max(excess, 0) + 1
  while true do
    local page = redis.call('XRANGE', hkey, start, '+', 'COUNT', count)
    for _, item in ipairs(page) do
      local seq, ms = string.match(item[1], '^(%d+)-(%d+)$')
      if #seqs >= excess and tonumber(ms) >= min_ms then
        page = nil
        break
      end
      seqs[#seqs + 1] = seq
      last = item
    end
    if page == nil or #page < count then break end
    start, count = '(' .. last[1], 100
  end
  if last == nil then return end
  local last_seq = seqs[#seqs]
  local last_offset = string.match(last[2][2], '^(%d+)')
  redis.call('XTRIM', hkey, 'MINID', string.format('%d-0', tonumber(last_seq) + 1))
  redis.call('XADD', tkey, 'MAXLEN', '~', tomb_max, last_seq .. '-' .. last_offset,
    's', table.concat(seqs, ' '))
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

# KEYS: epoch, seq, offsets, feed, dedup, then (history, trimmed) per distinct channel.
# ARGV: candidate epoch, max entries, max age ms, feed max, dedup ttl ms, use dedup (0/1),
#       trimmed max, entry count, channel count C, C pairs (channel name, its entry count),
#       then the entries, one line each: "CHANNEL_NUMBER SEVERITY CUT DATA", where DATA is
#       the JSON line without its offset, which belongs after its first CUT bytes; last the
#       feed's max bytes.
APPEND = (
    _TRIM
    + _FEED
    + _EPOCH
    + """
local epoch = epoch_of(KEYS[1], ARGV[1])
if ARGV[6] == '1' then
  local seen = redis.call('GET', KEYS[5])
  if seen then return {epoch, 1, seen} end
end
local n, nchan = tonumber(ARGV[8]), tonumber(ARGV[9])
local now = redis.call('TIME')
local ms = string.format('%d', now[1] * 1000 + math.floor(now[2] / 1000))
local first = redis.call('INCRBY', KEYS[2], n) - n + 1
local names, next_offset = {}, {}
for c = 1, nchan do
  local name, k = ARGV[8 + 2 * c], tonumber(ARGV[9 + 2 * c])
  names[c] = name
  next_offset[c] = redis.call('HINCRBY', KEYS[3], name, k) - k
end
local seq, offsets, lines = first, {}, {}
for c, severity, cut, data in string.gmatch(ARGV[10 + 2 * nchan], '(%d+) (%d+) (%d+) ([^\\n]*)') do
  c, cut = tonumber(c), tonumber(cut)
  local offset = string.format('%d', next_offset[c])
  next_offset[c] = next_offset[c] + 1
  local record = offset .. ' ' .. severity .. ' '
    .. string.sub(data, 1, cut) .. offset .. string.sub(data, cut + 1)
  redis.call('XADD', KEYS[4 + 2 * c], string.format('%d-', seq) .. ms, 'e', record)
  offsets[#offsets + 1] = offset
  lines[#lines + 1] = names[c] .. ' ' .. record
  seq = seq + 1
end
local min_ms = tonumber(ms) - tonumber(ARGV[3])
for c = 1, nchan do
  trim(KEYS[4 + 2 * c], KEYS[5 + 2 * c], tonumber(ARGV[2]), min_ms, ARGV[7])
end
if n > 0 then
  local line = table.concat(lines, '\\n')
  local last = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)[1]
  local total = #line + ((last and feed_bytes(last[2])) or 0)
  local id = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*',
    'p', epoch, 's', string.format('%d', first), 'e', line, 'b', string.format('%d', total))
  trim_feed(KEYS[4], total - tonumber(ARGV[11 + 2 * nchan]), id)
end
local result = string.format('%d', first)
if n > 0 then result = result .. ' ' .. table.concat(offsets, ' ') end
if ARGV[6] == '1' then redis.call('SET', KEYS[5], result, 'PX', ARGV[5]) end
return {epoch, 0, result}
"""
)

# One channel's events in (after, upto], oldest first, after trimming by age, and how many
# of its events after `after` trimming removed.
# KEYS: history, trimmed, offsets. ARGV: channel, after, upto, max entries, max age ms,
# trimmed max. Returns {lost, newest lost seq, id, record, id, record, ...}.
READ = (
    _TRIM
    + """
local now = redis.call('TIME')
local min_ms = now[1] * 1000 + math.floor(now[2] / 1000) - tonumber(ARGV[5])
trim(KEYS[1], KEYS[2], tonumber(ARGV[4]), min_ms, ARGV[6])
local after = tonumber(ARGV[2])
local out = {0}
local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local first_kept
if #oldest > 0 then
  first_kept = tonumber(string.match(oldest[1][2][2], '^(%d+)'))
else
  first_kept = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
end
local chunk = redis.call('XRANGE', KEYS[2], string.format('%d', after + 1), '+', 'COUNT', 1)
if #chunk > 0 then
  local id = chunk[1][1]
  local last_offset = tonumber(string.match(id, '-(%d+)$'))
  local seen, size = 0, 0
  for seq in string.gmatch(chunk[1][2][2], '%d+') do
    size = size + 1
    if tonumber(seq) <= after then seen = seen + 1 end
  end
  local first_lost = last_offset - size + 1 + seen
  out[1] = first_kept - first_lost
  -- The record of older trims was itself trimmed: count every trimmed event (upper bound).
  if seen == 0 and first_lost > 0 then
    if #redis.call('XREVRANGE', KEYS[2], '(' .. id, '-', 'COUNT', 1) == 0 then
      out[1] = first_kept
    end
  end
end
-- The newest lost seq: where the replay's gap goes.
local newest = 0
if out[1] > 0 then
  local record = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
  newest = tonumber(string.match(record[1], '^(%d+)'))
end
out[2] = newest
for _, item in ipairs(redis.call('XRANGE', KEYS[1], string.format('%d', after + 1), ARGV[3])) do
  out[#out + 1] = item[1]
  out[#out + 1] = item[2][2]
end
return out
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
