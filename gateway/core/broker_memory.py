"""The embedded broker: bounded history per channel in this process's memory.

History is lost when the process stops, so every start has a new random epoch.

Three bounds keep it: entries per channel (at each append), age, and the bytes of all
history together (`max_bytes`: past it the oldest entries of the whole broker go first).
Both global ones evict through one heap of channels by their oldest seq, on a timer, so the
work of a tick is what expires; nothing walks every channel. A channel keeps the seqs it
lost (at most `max_entries` of them) so a late cursor is told exactly what it missed; once
it holds nothing, that record is kept GAP_MEMORY history windows and then the channel is
forgotten (DESIGN §3.1).
"""

from __future__ import annotations

import asyncio
import heapq
import secrets
import time
from array import array
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Sequence
from typing import Final

from gateway.core import broker
from gateway.core.broker import (
    Appended,
    DedupKey,
    Gap,
    Listener,
    Loss,
    Page,
    PageSize,
    Usage,
    with_gaps,
)
from gateway.core.channels import Pattern
from gateway.core.cursor import Cursor
from gateway.core.discovery import ChannelInfo, newest_first
from gateway.core.events import Entry, Event, make_event
from gateway.core.index import ChannelIndex
from gateway.core.memory_reads import CHANNEL_SLICE, History, Reads, matching
from gateway.core.seq_index import SeqIndex

# Bytes counted against `max_bytes` besides each event's JSON line, measured with
# tracemalloc (docs/OPERATIONS.md, "Sizing"): an event's objects and its place in history,
# a channel's own objects and index entry, and one recorded lost seq; and each run (one
# append's entries to one channel) of the seq index that reads walk (seq_index).
EVENT_COST = 180
CHANNEL_COST = 1150
LOSS_COST = 8
# What de-duplication holds, measured the same way: a stored batch, each of its entries,
# and a producer's own objects (plus its id's bytes). Bounded by `max_dedup_bytes`.
DEDUP_BATCH_COST = 420
DEDUP_ENTRY_COST = 20
DEDUP_PRODUCER_COST = 400
TICK = 1.0  # longest pause between expiry ticks (seconds)
TICK_WORK = 5_000  # most evictions in one tick; more go on in the next loop turn
RUN_COST = 16  # a run of the seq index: its first seq in an array, its channel in a list

# What de-duplication keeps of a stored batch: when, its offsets and seqs (16 B an entry).
_Stored = tuple[float, array, array]  # type: ignore[type-arg]


class MemoryBroker:
    """Broker protocol over in-process memory."""

    def __init__(
        self,
        limits: broker.Limits,
        *,
        max_producers: int = 10_000,
    ) -> None:
        # An attribute, not a property: read on every publish (Ingest) and delivery (Hub).
        self.epoch: Final = secrets.token_hex(4)
        self._seq = 0
        self._channels: dict[str, History] = {}  # the publish path's lookup
        self._index: ChannelIndex[History] = ChannelIndex()  # the readers' lookup
        self._runs: SeqIndex[History] = SeqIndex()  # the readers' walk, in seq order
        self._reads = Reads(self._index, self._runs, limits.max_age)
        self._oldest: list[tuple[int, History]] = []  # (oldest seq, channel), one per holder
        self._emptied: deque[tuple[float, History]] = deque()  # channels left with a record
        self._forgotten = 0  # newest seq of any channel forgotten (its losses are unknown)
        self._holding = 0  # channels with retained events
        self._entries = 0
        self._bytes = 0
        self.evicted: dict[str, int] = {}  # by cause; not a Counter: its += costs 3x
        self._listeners: list[Listener] = []
        self._max_entries = limits.max_entries
        self._max_age = limits.max_age
        self._max_bytes = limits.max_bytes
        self._dedup: OrderedDict[str, OrderedDict[int, _Stored]] = OrderedDict()
        self._dedup_seconds = limits.dedup_seconds
        self._dedup_batches = limits.dedup_batches
        self._max_producers = max_producers
        self._max_dedup_bytes = limits.max_dedup_bytes
        self.dedup_bytes = 0
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None

    async def append(self, entries: Sequence[Entry], key: DedupKey | None) -> Appended:
        now = time.monotonic()
        if key is not None and (seen := self._seen(key, now)) is not None:
            # Rebuilt from the batch resent (the same batch): only offsets and seqs are kept.
            _, offsets, seqs = seen
            stored = zip(entries, offsets, seqs, strict=False)
            return Appended([Event(e.channel, o, s, e.severity, b"") for e, o, s in stored], True)
        events, touched = self._store(entries, now)
        for history, seq in touched.items():  # once per channel, in seq order
            self._index.put(history.name, history, seq)
            excess = len(history.events) - self._max_entries
            if excess > 0:  # the count bound (its heap entry is corrected lazily)
                self._evict(history, excess, "count")
        if self._bytes > self._max_bytes:
            self._expire(now, TICK_WORK * 100)
        if key is not None:
            self._remember(key, events, now)
        if self._timer is None and self._holding:
            self._schedule(TICK)
        if events:
            for listener in self._listeners:
                listener(events)
        return Appended(events)

    def _store(
        self, entries: Sequence[Entry], now: float
    ) -> tuple[list[Event], dict[History, int]]:
        """Add entries to their channels' histories; `append` evicts after the batch. Also
        returns each channel touched with its newest seq, the last touched last."""
        channels = self._channels
        events = []
        touched: dict[History, int] = {}
        size = 0
        runs, last = self._runs, self._runs.last
        for entry in entries:  # the publish path's inner loop: one event per entry
            history = channels.get(entry.channel)
            if history is None:
                history = self._open(entry.channel)
            self._seq += 1
            if history is not last:
                runs.add(self._seq, history)
                last = history
                size += RUN_COST
            touched.pop(history, None)  # (re)inserted: the dict's order is the seqs'
            touched[history] = self._seq
            event = make_event(entry, history.next_offset, self._seq)
            history.next_offset += 1
            if not history.events:
                self._hold(history)
            event.stored_at = now
            history.events.append(event)
            events.append(event)
            size += len(event.data)
        self._entries += len(events)
        self._bytes += size + EVENT_COST * len(events)
        return events, touched

    def _open(self, name: str) -> History:
        history = self._channels[name] = History(name)  # `append` puts it in the index
        self._bytes += CHANNEL_COST
        return history

    def _hold(self, history: History) -> None:
        """`history` is about to get its first retained event (new, or back from empty)."""
        history.emptied_at = None
        self._holding += 1
        heapq.heappush(self._oldest, (self._seq, history))

    def _evict(self, history: History, n: int, cause: str) -> None:
        """Drop the `n` oldest events of `history`, recording their seqs."""
        events, lost = history.events, history.lost
        size = 0
        for _ in range(n):  # mostly one: the count bound, on every append to a full channel
            event = events.popleft()
            lost.append(event.seq)
            size += len(event.data)
        self._entries -= n
        self._bytes -= size + (EVENT_COST - LOSS_COST) * n
        self.evicted[cause] = self.evicted.get(cause, 0) + n
        if len(history.lost) > 2 * self._max_entries:
            cut = len(history.lost) - self._max_entries
            del history.lost[:cut]
            history.lost_dropped += cut
            self._bytes -= LOSS_COST * cut
        if not events:
            self._holding -= 1
            history.emptied_at = time.monotonic()
            self._emptied.append((history.emptied_at, history))

    def _expire(self, now: float, budget: int) -> int:
        """Evict the oldest events of the whole broker while they are past the age bound
        or history is over its byte bound; then forget channels whose record has aged out.
        Returns the budget left (0: there may be more to do)."""
        cutoff = now - self._max_age
        heap = self._oldest
        while heap and budget > 0:
            seq, history = heap[0]
            events = history.events
            if events[0].seq != seq:  # the count bound moved it on: correct the key
                heapq.heapreplace(heap, (events[0].seq, history))
                continue
            stored_at = events[0].stored_at
            if stored_at >= cutoff and self._bytes <= self._max_bytes:
                break
            self._evict(history, 1, "age" if stored_at < cutoff else "memory")
            budget -= 1
            if history.events:
                heapq.heapreplace(heap, (history.events[0].seq, history))
            else:
                heapq.heappop(heap)
        oldest = heap[0][0] if heap else self._seq + 1  # (at most the oldest held seq)
        self._bytes -= RUN_COST * self._runs.trim(oldest, self._seq)
        return self._forget(now - broker.GAP_MEMORY * self._max_age, budget)

    def _forget(self, cutoff: float, budget: int) -> int:
        """Forget channels that have held nothing since `cutoff` (or sooner, past the byte
        bound, when no event is left to evict)."""
        emptied = self._emptied
        over = self._bytes > self._max_bytes and not self._oldest
        while emptied and budget > 0 and (emptied[0][0] < cutoff or over):
            when, history = emptied.popleft()
            budget -= 1
            if history.emptied_at != when:
                continue  # it got entries again since
            del self._channels[history.name]
            self._index.pop(history.name)
            self._forgotten = max(self._forgotten, history.lost[-1] if history.lost else 0)
            self._bytes -= CHANNEL_COST + LOSS_COST * len(history.lost)
            over = self._bytes > self._max_bytes and not self._oldest
        return budget

    def _schedule(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self._tick) if delay else loop.call_soon(self._tick)

    def _tick(self) -> None:
        self._timer = None
        left = self._expire(time.monotonic(), TICK_WORK)
        if not left:
            self._schedule(0)  # more is due: go on after other work has had its turn
        elif self._channels:
            self._schedule(min(TICK, self._max_age / 4))

    def _seen(self, key: DedupKey, now: float) -> _Stored | None:
        producer, sequence = key
        window = self._dedup.get(producer)
        if window is None:
            return None
        self._dedup.move_to_end(producer)
        stored = window.get(sequence)
        if stored is None or stored[0] < now - self._dedup_seconds:
            return None
        return stored

    def _remember(self, key: DedupKey, events: list[Event], now: float) -> None:
        producer, sequence = key
        window = self._dedup.get(producer)
        if window is None:
            window = self._dedup[producer] = OrderedDict()
            self.dedup_bytes += DEDUP_PRODUCER_COST + len(producer)
        self._dedup.move_to_end(producer)
        window[sequence] = (
            now,
            array("q", [e.offset for e in events]),
            array("q", [e.seq for e in events]),
        )
        window.move_to_end(sequence)
        self.dedup_bytes += _batch_cost(window[sequence])
        if len(window) > self._dedup_batches:
            self.dedup_bytes -= _batch_cost(window.popitem(last=False)[1])
        # Producers in order of last use: the least recent go first, by count, age or bytes;
        # past the bytes with one producer left, its oldest batches.
        oldest = self._dedup
        while (
            len(oldest) > self._max_producers
            or _idle(oldest, now - self._dedup_seconds)
            or (self.dedup_bytes > self._max_dedup_bytes and len(oldest) > 1)
        ):
            gone, batches = oldest.popitem(last=False)
            self.dedup_bytes -= DEDUP_PRODUCER_COST + len(gone)
            self.dedup_bytes -= sum(_batch_cost(b) for b in batches.values())
        while self.dedup_bytes > self._max_dedup_bytes and len(window) > 1:
            self.dedup_bytes -= _batch_cost(window.popitem(last=False)[1])

    async def head(self) -> int:
        return self._seq

    async def read_after(
        self,
        patterns: Sequence[Pattern],
        after: Cursor,
        size: PageSize = broker.PAGE,
        min_severity: int = 0,
    ) -> AsyncGenerator[Page, None]:
        upto, forgotten = self._seq, self._forgotten
        reset = after.epoch != self.epoch
        since = 0 if reset else after.seq
        pages = self._reads.after(patterns, since, upto, not reset, size, min_severity)
        async for page in with_gaps(pages, patterns, reset, since, forgotten):
            yield page

    async def read_before(
        self,
        patterns: Sequence[Pattern],
        before: int | None,
        size: PageSize = broker.PAGE,
        min_severity: int = 0,
    ) -> AsyncGenerator[Page, None]:
        start = self._seq + 1 if before is None else min(before, self._seq + 1)
        async for page in self._reads.before(patterns, start, size, min_severity):
            yield page

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def watch(self, pattern: Pattern) -> None:
        """Nothing to do: every event is stored in this process, and the hub routes it."""

    def unwatch(self, pattern: Pattern) -> None:
        """Nothing to do (see watch)."""

    async def ready(self) -> bool:
        return True

    def usage(self) -> Usage:
        return Usage(
            self._holding, self._entries, self._bytes, dict(self.evicted), self.dedup_bytes
        )

    async def lost(self, patterns: Sequence[Pattern]) -> list[Gap]:
        cutoff = time.monotonic() - self._max_age
        losses = [Loss(exact=not self._forgotten) for _ in patterns]
        seq, forgotten = self._seq, self._forgotten
        for n, (i, history) in enumerate(matching(self._index, patterns) or [], 1):
            losses[i].add(*history.lost_between(0, seq, history.stale(cutoff)))
            if n % CHANNEL_SLICE == 0:  # one turn of the loop per slice of channels
                await asyncio.sleep(0)
        return Loss.gaps(patterns, losses, False, forgotten)

    async def channels(
        self, patterns: Sequence[Pattern], before: int | None, limit: int
    ) -> list[ChannelInfo]:
        now = time.monotonic()
        cutoff = now - self._max_age

        def holding(h: History) -> bool:
            return bool(h.events) and h.events[-1].stored_at >= cutoff

        matched = {
            h.name: h for p in patterns for _, h in self._index.newest(p, before, limit, holding)
        }
        page = newest_first(matched.values(), lambda h: h.events[-1].seq, before, limit)
        wall = time.time() - now  # stored_at is monotonic: the page says Unix time
        return [
            ChannelInfo(
                h.name,
                len(h.events) - h.stale(cutoff),
                h.events[-1].seq,
                h.events[-1].stored_at + wall,
            )
            for h in page
        ]

    async def close(self) -> None:
        self._listeners.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _batch_cost(stored: _Stored) -> int:
    return DEDUP_BATCH_COST + DEDUP_ENTRY_COST * len(stored[1])


def _idle(producers: OrderedDict[str, OrderedDict[int, _Stored]], cutoff: float) -> bool:
    """Whether the least recently used producer's newest batch is older than `cutoff`."""
    if not producers:
        return False
    window = next(iter(producers.values()))
    return not window or next(reversed(window.values()))[0] < cutoff
