"""The Redis broker's paged reads (Broker.read_after, Broker.read_before).

A read keeps, per matching channel, the seq it goes on from, in a heap, and builds a page
by handing the PAGE script (redis_page_lua) the MERGE channels that come first: no other
channel holds a seq before the next one's, so the script merges them up to it, bounded by
the page (entries, bytes, and entries looked at), and says where each channel goes on.
Redis does a page's work per call, never a whole replay's, and this process holds the page
and a few numbers per channel. A forward read also checks each channel's offsets as it
goes: an entry trimmed while the read was under way is counted lost, never skipped.
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field

from gateway.core.broker import Loss, Page, PageSize
from gateway.core.events import Event

MERGE = 64  # channels one PAGE call merges
STEPS = 4  # entries a call may look at per entry it may take (a severity floor skips some)

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
        self.heap.append((key, len(self.names)))
        self.names.append(name)
        self.pattern.append(pattern)
        self.expect.append(expect)


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


async def backward(reading: Reading, channels: Channels, before: int) -> AsyncGenerator[Page, None]:
    """Pages of the channels' entries below `before`, newest first (each in seq order)."""
    heapq.heapify(channels.heap)
    pos, page = before, Page()
    while channels.heap:
        taken = [heapq.heappop(channels.heap)[1] for _ in range(min(MERGE, len(channels.heap)))]
        low = 1 - channels.heap[0][0] if channels.heap else 0
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
