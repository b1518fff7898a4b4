"""The Redis script of one page of a read (redis_reads): a few channels' histories merged.

Kept apart from broker_redis_lua (the writes and their key layout, described there): this
script only reads the history streams `P:h:CHANNEL`, whose entry ids are `SEQ-MS` and whose
field `e` is "OFFSET SEVERITY DATA".
"""

from __future__ import annotations

# One page of a read over a few channels' histories, merged in seq order (forward) or
# the reverse (back): at most MOST entries of about BUDGET bytes, and at most STEPS entries
# looked at, each channel read CHUNK entries at a time, so one call is bounded work in
# Redis (and a bounded reply) whatever the history.
# KEYS: the histories. ARGV: direction (1 forward, -1 back); from (exclusive: forward the
# seq read after, back the seq read below); to (inclusive: forward the highest seq, back
# the lowest); the highest seq a forward peek may find (the read's snapshot); severity
# floor; MOST; BUDGET; STEPS; max age ms; then each channel's expected next offset
# (forward; 0 back).
# Returns one string: "STOP DONE", then per channel "PEEK EXPECT LOST NEWEST", then per
# entry taken "CHANNEL ID RECORD" (CHANNEL: its place in KEYS). DONE 1: every channel was
# read to `to` (STOP is `to`); else STOP is the last seq looked at. PEEK: the channel's
# next seq past STOP (0: none); EXPECT: the offset that entry should have; LOST: entries
# found missing (offsets skipped, or past the age bound) and NEWEST a seq at or above the
# newest of them.
PAGE = """
local dir, from, to = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local peek_to, floor = ARGV[4], tonumber(ARGV[5])
local most, budget, steps = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local now = redis.call('TIME')
local min_ms = now[1] * 1000 + math.floor(now[2] / 1000) - tonumber(ARGV[9])
local guess = tonumber(ARGV[10])
local CHUNK = 16
local function seq_of(id) return tonumber(string.match(id, '^(%d+)')) end
local function ms_of(id) return tonumber(string.match(id, '-(%d+)$')) end

local function fetch(key, after_id, bound, count)
  if dir == 1 then
    local start = after_id and ('(' .. after_id) or string.format('%d', from + 1)
    return redis.call('XRANGE', key, start, bound, 'COUNT', count)
  end
  local start = after_id and ('(' .. after_id) or string.format('%d', from - 1)
  return redis.call('XREVRANGE', key, start, bound, 'COUNT', count)
end

local n = #KEYS
-- Each read of a channel takes about its share of what the page may hold (at least 2,
-- at most CHUNK), so a page over many channels does not read far past what it takes.
local first = math.max(2, math.min(CHUNK, math.ceil(guess / n)))
local taken = 0
local function more() return math.max(2, math.min(CHUNK, guess - taken)) end
local buf, at, asked, last_id, ended, expired = {}, {}, {}, {}, {}, {}
local expect, lost, newest = {}, {}, {}
for c = 1, n do
  buf[c], at[c], asked[c] = fetch(KEYS[c], nil, to, first), 1, first
  ended[c], expired[c] = false, false
  expect[c], lost[c], newest[c] = tonumber(ARGV[10 + c]), 0, 0
end

-- The next entry of channel c within `to`, read CHUNK at a time (nil: none).
local function head(c)
  if expired[c] then return nil end
  if at[c] > #buf[c] then
    if ended[c] or #buf[c] < asked[c] then return nil end
    local count = more()
    buf[c], at[c], asked[c] = fetch(KEYS[c], last_id[c], to, count), 1, count
    if #buf[c] == 0 then ended[c] = true return nil end
  end
  return buf[c][at[c]]
end

-- Each channel's next seq (false: none), kept so that choosing the next entry compares
-- numbers, and only the channel taken from is read again.
local heads = {}
local function refresh(c)
  local item = head(c)
  heads[c] = item and seq_of(item[1]) or false
end
for c = 1, n do refresh(c) end

local out, used, looked, stop, done = {}, 0, 0, from, 1
while true do
  if taken >= most or (used >= budget and taken > 0) or looked >= steps then
    done = 0
    break
  end
  local best, bseq = nil, nil
  for c = 1, n do
    local s = heads[c]
    if s and (best == nil or (s - bseq) * dir < 0) then best, bseq = c, s end
  end
  if best == nil then break end
  local item = buf[best][at[best]]
  at[best], last_id[best] = at[best] + 1, item[1]
  looked, stop = looked + 1, bseq
  local record = item[2][2]
  local offset = tonumber(string.match(record, '^(%d+)'))
  if dir == 1 then
    if offset > expect[best] then
      lost[best], newest[best] = lost[best] + offset - expect[best], bseq - 1
    end
    expect[best] = offset + 1
  end
  if ms_of(item[1]) < min_ms then
    if dir == 1 then
      lost[best], newest[best] = lost[best] + 1, bseq
    else
      expired[best] = true  -- what is older is older still
    end
  elseif tonumber(string.match(record, '^%d+ (%d+)')) >= floor then
    out[#out + 1] = best .. ' ' .. item[1] .. ' ' .. record
    used, taken = used + #record, taken + 1
  end
  refresh(best)
end

local lines = {(done == 1 and to or string.format('%d', stop)) .. ' ' .. done}
for c = 1, n do
  local peek, item = '0', nil
  if not expired[c] then
    if done == 0 then item = head(c) end  -- its next within `to`, else the next past it
    if item == nil then item = fetch(KEYS[c], last_id[c], dir == 1 and peek_to or '-', 1)[1] end
    if item and dir == -1 and ms_of(item[1]) < min_ms then item = nil end
  end
  if item then peek = string.match(item[1], '^(%d+)') end
  lines[#lines + 1] = string.format('%s %d %d %d', peek, expect[c], lost[c], newest[c])
end
for _, line in ipairs(out) do lines[#lines + 1] = line end
return table.concat(lines, '\\n')
"""
