"""The memory broker's backward merge: a read back over the channels it matches, their
retained events merged by seq with a heap over those channels only.

Reads.before takes it instead of the seq walk when the matching channels are few next to
the runs the walk would pass (other channels' runs between theirs), so a page costs the
channels matched and the events returned, however busy the others are. The heap is filled
and drained in slices, the loop running others between them: a head is checked against its
channel when it is taken (an eviction meanwhile moves a deque's indices), so an event gone
since is neither returned nor met twice.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gateway.core.broker import Page, PageSize
from gateway.core.events import Event

if TYPE_CHECKING:  # memory_reads imports this module
    from gateway.core.memory_reads import History

MERGE_SLICE = 256  # channels opened, or events taken, between two turns of the loop

# A head: (-seq, the channel's place, the channel, the event's index in its deque).
_Head = tuple[int, int, "History", int]


def _seq(event: Event) -> int:
    return event.seq


def full(page: Page, held: int, size: PageSize) -> bool:
    """Whether `page`, holding `held` bytes of data, takes no more events."""
    return len(page.events) >= size.entries or (held >= size.bytes and bool(page.events))


class BackFill:
    """A page being filled backward: each event older than the last, within a size."""

    def __init__(self, size: PageSize, floor: int) -> None:
        self._page, self._held = Page(), 0
        self._size, self._floor = size, floor

    def add(self, event: Event) -> bool:
        """Take `event` if it is of the severity asked for; False once the page is full
        (without it)."""
        if event.severity < self._floor:
            return True
        if full(self._page, self._held, self._size):
            return False
        self._page.events.append(event)
        self._held += len(event.data)
        return True

    def page(self, end: bool) -> Page:
        """The page in seq order, `next` its oldest seq; `end`: nothing older is left."""
        page = self._page
        page.events.reverse()
        page.next, page.end = (page.events[0].seq if page.events else 0), end
        return page


class BackMerge:
    """The retained events of `channels` below a seq, newest first, stored at or after
    `cutoff` (older ones are past the age bound, about to be evicted)."""

    def __init__(self, channels: Sequence[History], cutoff: float) -> None:
        self._channels = channels
        self._cutoff = cutoff
        self._heap: list[_Head] = []

    async def page(self, before: int, size: PageSize, floor: int) -> Page:
        """The page of events below `before` (of at least severity `floor`) within `size`,
        in seq order; `next` is its oldest seq, `end` set when nothing older is left."""
        await self._open(before)
        fill, taken = BackFill(size, floor), 0
        while (event := self._take()) is not None:
            taken += 1
            if taken % MERGE_SLICE == 0:
                await asyncio.sleep(0)
            if not fill.add(event):
                return fill.page(end=False)
        return fill.page(end=True)

    async def _open(self, before: int) -> None:
        """A head for each channel: its newest retained event below `before`."""
        heap: list[_Head] = []
        for place, history in enumerate(self._channels):
            if place % MERGE_SLICE == MERGE_SLICE - 1:
                await asyncio.sleep(0)
            events = history.events
            i = bisect.bisect_left(events, before, key=_seq) - 1
            if i >= 0 and events[i].stored_at >= self._cutoff:
                heap.append((-events[i].seq, place, history, i))
        heapq.heapify(heap)
        self._heap = heap

    def _take(self) -> Event | None:
        """The newest event among the heads, its channel's next older one put in its place."""
        heap = self._heap
        while heap:
            key, place, history, i = heap[0]
            events = history.events
            if i >= len(events) or events[i].seq != -key:  # evicted from the front since
                i = bisect.bisect_left(events, -key, key=_seq)
                if i >= len(events) or events[i].seq != -key:  # itself gone: all older too
                    heapq.heappop(heap)
                    continue
            event = events[i]
            if i > 0 and events[i - 1].stored_at >= self._cutoff:
                heapq.heapreplace(heap, (-events[i - 1].seq, place, history, i - 1))
            else:
                heapq.heappop(heap)
            return event
        return None
