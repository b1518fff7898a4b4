"""The embedded broker: bounded history per channel in this process's memory.

History is lost when the process stops, so every start has a new random epoch.
"""

from __future__ import annotations

import bisect
import heapq
import secrets
import time
from array import array
from collections import OrderedDict, deque
from collections.abc import Sequence

from gateway.core.broker import Appended, DedupKey, Gap, Listener, Replay
from gateway.core.channels import Pattern
from gateway.core.cursor import Cursor
from gateway.core.events import Entry, Event, make_event

# What de-duplication keeps of a stored batch: its offsets and seqs, 16 bytes an entry.
_Stored = tuple[array, array]  # type: ignore[type-arg]

# Seqs of evicted events kept per channel, to count exactly what a late cursor lost.
EVICTED_MEMORY = 100_000


class _History:
    """One channel's retained events, oldest first, plus what eviction removed."""

    __slots__ = ("events", "evicted", "evicted_overflow", "next_offset", "stored_at")

    def __init__(self) -> None:
        self.events: deque[Event] = deque()
        self.stored_at: deque[float] = deque()
        self.next_offset = 0
        self.evicted = array("q")
        self.evicted_overflow = 0

    def trim(self, max_entries: int, min_time: float) -> None:
        events, stored_at = self.events, self.stored_at
        if (excess := len(events) - max_entries) > 0:  # a full history, at each append
            self.evicted.extend([events.popleft().seq for _ in range(excess)])
            for _ in range(excess):
                stored_at.popleft()
        while events and stored_at[0] < min_time:
            self.evicted.append(events.popleft().seq)
            stored_at.popleft()
        if len(self.evicted) > EVICTED_MEMORY:
            cut = len(self.evicted) - EVICTED_MEMORY // 2
            self.evicted_overflow += cut
            del self.evicted[:cut]

    def lost_after(self, seq: int) -> int:
        """How many evicted events came after `seq` (an upper bound past EVICTED_MEMORY)."""
        lost = len(self.evicted) - bisect.bisect_right(self.evicted, seq)
        if self.evicted and self.evicted[0] > seq:
            lost += self.evicted_overflow
        return lost

    def after(self, seq: int) -> list[Event]:
        events = self.events
        if not events or events[-1].seq <= seq:
            return []
        if events[0].seq > seq:
            return list(events)
        # deque has no bisect; history is bounded (default 1,000), so a scan from the end is short.
        out: list[Event] = []
        for event in reversed(events):
            if event.seq <= seq:
                break
            out.append(event)
        out.reverse()
        return out


class MemoryBroker:
    """Broker protocol over in-process memory."""

    def __init__(
        self,
        *,
        max_entries: int = 1000,
        max_age: float = 600.0,
        dedup_per_producer: int = 1024,
        max_producers: int = 10_000,
    ) -> None:
        self._epoch = secrets.token_hex(4)
        self._seq = 0
        self._channels: dict[str, _History] = {}
        self._listeners: list[Listener] = []
        self._max_entries = max_entries
        self._max_age = max_age
        self._dedup: OrderedDict[str, OrderedDict[int, _Stored]] = OrderedDict()
        self._dedup_per_producer = dedup_per_producer
        self._max_producers = max_producers

    @property
    def epoch(self) -> str:
        return self._epoch

    async def append(self, entries: Sequence[Entry], key: DedupKey | None) -> Appended:
        if key is not None and (seen := self._seen(key)) is not None:
            # Rebuilt from the batch resent (the same batch): only offsets and seqs are kept.
            offsets, seqs = seen
            stored = zip(entries, offsets, seqs, strict=False)
            return Appended([Event(e.channel, o, s, e.severity, b"") for e, o, s in stored], True)
        now = time.monotonic()
        events = self._store(entries, now)
        for channel in {e.channel for e in entries}:  # once per channel, not per entry
            self._channels[channel].trim(self._max_entries, now - self._max_age)
        if key is not None:
            self._remember(key, events)
        if events:
            for listener in self._listeners:
                listener(events)
        return Appended(events)

    def _store(self, entries: Sequence[Entry], now: float) -> list[Event]:
        """Add entries to their channels' histories; `append` trims after the batch."""
        channels = self._channels
        events = []
        for entry in entries:  # the publish path's inner loop: one event per entry
            history = channels.get(entry.channel)
            if history is None:
                history = channels[entry.channel] = _History()
            self._seq += 1
            event = make_event(entry, history.next_offset, self._seq)
            history.next_offset += 1
            history.events.append(event)
            history.stored_at.append(now)
            events.append(event)
        return events

    def _seen(self, key: DedupKey) -> _Stored | None:
        producer, sequence = key
        window = self._dedup.get(producer)
        if window is None:
            return None
        self._dedup.move_to_end(producer)
        return window.get(sequence)

    def _remember(self, key: DedupKey, events: list[Event]) -> None:
        producer, sequence = key
        window = self._dedup.get(producer)
        if window is None:
            window = self._dedup[producer] = OrderedDict()
            if len(self._dedup) > self._max_producers:
                self._dedup.popitem(last=False)
        window[sequence] = (
            array("q", [e.offset for e in events]),
            array("q", [e.seq for e in events]),
        )
        if len(window) > self._dedup_per_producer:
            window.popitem(last=False)

    async def head(self) -> int:
        return self._seq

    async def replay(self, patterns: Sequence[Pattern], after: Cursor) -> Replay:
        min_time = time.monotonic() - self._max_age
        reset = after.epoch != self._epoch
        since = 0 if reset else after.seq
        replay = Replay()
        if reset:
            replay.gaps = [Gap(p.text, 0, "reset") for p in patterns]
        runs: list[list[Event]] = []
        for name, history in self._channels.items():
            if not any(p.matches(name) for p in patterns):
                continue
            history.trim(self._max_entries, min_time)
            if not reset and (lost := history.lost_after(since)):
                replay.gaps.append(Gap(name, lost, "trimmed"))
            if events := history.after(since):
                runs.append(events)
        replay.events = list(heapq.merge(*runs, key=lambda e: e.seq))
        return replay

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def ready(self) -> bool:
        return True

    def channel_count(self) -> int:
        return len(self._channels)

    async def close(self) -> None:
        self._listeners.clear()
