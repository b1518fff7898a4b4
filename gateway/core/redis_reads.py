"""The Redis broker's paged reads (Broker.read_after, Broker.read_before).

A read keeps, per channel it follows, the seq it goes on from, in a heap, and builds a page
by handing the PAGE script (redis_page_lua) the MERGE channels that come first: no other
channel holds a seq before the next one's, so the script merges them up to it, bounded by
the page (entries, bytes, and entries looked at), and says where each channel goes on.
Redis does a page's work per call, never a whole replay's, and this process holds the page
and a few numbers per channel. A forward read also checks each channel's offsets as it
goes: an entry trimmed while the read was under way is counted lost, never skipped. A read
back takes its channels newest first as it reaches them (a tail over a pattern matching
100,000 channels follows about the channels its pages come from, not all of them).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from gateway.core.broker import Loss, Page, PageSize
from gateway.core.events import Event

MERGE = 64  # channels one PAGE call merges
STEPS = 4  # entries a call may look at per entry it may take (a severity floor skips some)
TURN = 1_024  # channels a read back takes in before the loop gets a turn
_NONE = ("", 0, 0)  # no channel left to reach

# Runs PAGE with these KEYS and ARGV; returns its reply.
RunPage = Callable[[list[str], list[int]], Awaitable[bytes]]


@dataclass(slots=True)
class Channels:
    """The channels a read follows: names, the pattern each counts under, the offset each
    one's next entry should have, and a heap of (next seq, channel number); a read back
    keys the heap by the negated seq, newest first."""

    names: list[str] = field(default_factory=list)
    pattern: list[int] = field(default_factory=list)
    expect: list[int] = field(default_factory=list)
    heap: list[tuple[int, int]] = field(default_factory=list)
    entry_bytes: int = 256  # the size of an entry read so far, for PAGE's GUESS

    def add(self, name: str, pattern: int, key: int, expect: int = 0) -> None:
        """Follow a channel from `key` (heapified when the read begins)."""
        self.heap.append((key, self._follow(name, pattern, expect)))

    def push(self, name: str, key: int) -> None:
        """Follow a channel from `key`, the read under way."""
        heapq.heappush(self.heap, (key, self._follow(name, 0, 0)))

    def _follow(self, name: str, pattern: int, expect: int) -> int:
        self.names.append(name)
        self.pattern.append(pattern)
        self.expect.append(expect)
        return len(self.names) - 1


@dataclass(frozen=True, slots=True)
class Reading:
    """What one read needs besides its channels."""

    run: RunPage
    history: Callable[[str], str]  # a channel's history key
    size: PageSize
    floor: int
    max_age_ms: int


async def forward(
    reading: Reading, channels: Channels, since: int, upto: int, losses: list[Loss]
) -> AsyncGenerator[tuple[Page, list[Loss]], None]:
    """Pages of the channels' entries in (since, upto], each with what they lost in its
    range (the first with `losses`, counted before the read began)."""
    heapq.heapify(channels.heap)
    pos, page, counted = since, Page(), set[int]()
    while channels.heap:
        taken = [heapq.heappop(channels.heap)[1] for _ in range(min(MERGE, len(channels.heap)))]
        to = min(channels.heap[0][0] - 1, upto) if channels.heap else upto
        reply = await _call(reading, page, taken, channels, [1, pos, to, upto])
        pos, done, lines, entries = _parse(reply, len(taken))
        for k, (peek, expect, lost, newest) in zip(taken, lines, strict=True):
            channels.expect[k] = expect
            if lost:
                losses[channels.pattern[k]].add(lost, newest, True, k not in counted)
                counted.add(k)
            if peek:
                heapq.heappush(channels.heap, (peek, k))
        _take(page, _events(entries, taken, channels.names), channels)
        if not done and _full(page, reading.size):
            page.next = pos
            yield page, losses
            page, counted, losses = Page(), set(), [Loss(exact=True) for _ in losses]
    page.next, page.end = upto, True
    yield page, losses


async def backward(
    reading: Reading, found: Iterator[tuple[str, int, int]], before: int
) -> AsyncGenerator[Page, None]:
    """Pages of the entries below `before`, newest first (each in seq order), of the
    channels `found` gives: (name, a seq at or above its newest entry below `before`, the
    seq its life began or 0), newest first. A channel is followed once the read reaches its
    seq; one whose life began at or after `before` is passed over (it holds nothing)."""
    channels, waiting = Channels(), _Waiting(found, before)
    pos, page = before, Page()
    while channels.heap or waiting.seq:
        await waiting.reached(channels)
        taken = [heapq.heappop(channels.heap)[1] for _ in range(min(MERGE, len(channels.heap)))]
        low = 1 + max(-channels.heap[0][0] if channels.heap else 0, waiting.seq)
        reply = await _call(reading, page, taken, channels, [-1, pos, low, 0])
        pos, done, lines, entries = _parse(reply, len(taken))
        for k, (peek, *_) in zip(taken, lines, strict=True):
            if peek:
                heapq.heappush(channels.heap, (-peek, k))
        _take(page, _events(entries, taken, channels.names), channels)
        if not done and _full(page, reading.size):
            page.events.reverse()
            page.next = pos
            yield page
            page = Page()
    page.events.reverse()
    page.next, page.end = (page.events[0].seq if page.events else 0), True
    yield page


class _Waiting:
    """The channels a read back has not reached yet, newest first (`seq`: the next one's,
    0 once none is left that can hold an entry)."""

    def __init__(self, found: Iterator[tuple[str, int, int]], before: int) -> None:
        self._found, self._before = found, before
        self._next = next(found, _NONE)

    @property
    def seq(self) -> int:
        return max(self._next[1], 0)

    async def reached(self, channels: Channels) -> None:
        """Follow the channels that may hold the next entry (every one at or above the
        heap's first) and enough for a call to merge MERGE, yielding the loop every TURN
        looked at."""
        looked = 0
        while self.seq and (len(channels.heap) < MERGE or self.seq >= -channels.heap[0][0]):
            name, seq, first = self._next
            if first < self._before:
                channels.push(name, -seq)
            self._next = next(self._found, _NONE)
            looked += 1
            if looked % TURN == 0:
                await asyncio.sleep(0)


async def _call(
    reading: Reading, page: Page, taken: list[int], channels: Channels, where: list[int]
) -> bytes:
    """PAGE over the `taken` channels, for what is left of `page`'s room."""
    room = reading.size.entries - len(page.events)
    budget = max(1, reading.size.bytes - sum(len(e.data) for e in page.events))
    guess = min(room, budget // channels.entry_bytes + 1)
    keys = [reading.history(channels.names[k]) for k in taken]
    args = [*where, reading.floor, room, budget, STEPS * room, reading.max_age_ms, guess]
    return await reading.run(keys, args + [channels.expect[k] for k in taken])


def _parse(reply: bytes, n: int) -> tuple[int, bool, list[list[int]], list[bytes]]:
    """STOP, DONE, the `n` channel lines and the entry lines of a PAGE reply."""
    first, *lines = reply.split(b"\n")
    stop, done = first.split()
    heads = [[int(x) for x in line.split()] for line in lines[:n]]
    return int(stop), done == b"1", heads, lines[n:]


def _events(lines: list[bytes], taken: list[int], names: list[str]) -> list[Event]:
    """Events of a PAGE reply's entry lines: "CHANNEL ID OFFSET SEVERITY DATA"."""
    events = []
    for line in lines:
        channel, entry_id, offset, severity, data = line.split(b" ", 4)
        seq = int(entry_id.split(b"-", 1)[0])
        name = names[taken[int(channel) - 1]]
        events.append(Event(name, int(offset), seq, int(severity), data))
    return events


def _take(page: Page, events: list[Event], channels: Channels) -> None:
    """Add `events` to `page`, and learn from them how large an entry is."""
    if events:
        page.events += events
        channels.entry_bytes = max(1, sum(len(e.data) for e in events) // len(events))


def _full(page: Page, size: PageSize) -> bool:
    if len(page.events) >= size.entries:
        return True
    return bool(page.events) and sum(len(e.data) for e in page.events) >= size.bytes
