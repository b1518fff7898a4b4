"""The memory broker's history of one channel, and its paged reads (Broker.read_after,
Broker.read_before).

A read that matches few channels (FEW) reads each of them and merges; one that matches
more walks the broker-wide seq index (seq_index) instead, so its cost is the seqs it
passes, however many channels match. A read back (history pages, tails) merges more than
FEW when that costs less than the walk: when the others' runs between the matching ones
outnumber the channels (memory_merge). Either way a page is built in bounded work (the
loop gets a turn every WALK_SLICE runs walked, or MERGE_SLICE channels or events merged)
and only when the reader asks for it. A page
decides, when it is read, what of its seq range is still retained; what is not is lost and
counted in its gaps, so an entry evicted while a read is under way is reported, never
silently skipped.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import time
from array import array
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence

from gateway.core.broker import Loss, Page, PageSize
from gateway.core.channels import Pattern
from gateway.core.events import Event
from gateway.core.index import ChannelIndex
from gateway.core.memory_merge import BackFill, BackMerge, full
from gateway.core.seq_index import SeqIndex

FEW = 32  # channels a read merges itself; past that it walks the seq index
MERGE_MOST = 1  # a read back merges at most as many channels as a page holds entries
WALK_SLICE = 64  # runs a walk passes between two turns of the loop
CHANNEL_SLICE = 500  # channels a read visits (to count losses) between two turns
MATCHES_KEPT = 4_096  # channel names a walk remembers the match of


class History:
    """One channel's retained events, oldest first, and the seqs of those it lost."""

    __slots__ = ("emptied_at", "events", "lost", "lost_dropped", "name", "next_offset")

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: deque[Event] = deque()  # each with its `stored_at`
        self.next_offset = 0
        self.lost = array("q")  # seqs of evicted events, ascending
        self.lost_dropped = 0  # evicted events whose seqs were let go, oldest first
        self.emptied_at: float | None = None  # when its last event went (None: it holds some)

    def stale(self, cutoff: float) -> int:
        """How many of its oldest events are past the age bound (the next tick's)."""
        n = 0
        for event in self.events:
            if event.stored_at >= cutoff:
                break
            n += 1
        return n

    def lost_between(self, after: int, upto: int, stale: int) -> tuple[int, int, bool]:
        """How many of its events in (after, upto] are gone (recorded, plus `stale` expired
        but not yet evicted), the newest of them, and whether the count is exact."""
        lost, events = self.lost, self.events
        low, high = bisect.bisect_right(lost, after), bisect.bisect_right(lost, upto)
        count = high - low
        newest = lost[high - 1] if count else 0
        for i in range(stale):
            if after < events[i].seq <= upto:
                count += 1
                newest = max(newest, events[i].seq)
        exact = not self.lost_dropped or (bool(lost) and lost[0] <= after)
        return count, newest, exact

    def held(self, lo: int, hi: int, skip: int = 0) -> Iterator[Event]:
        """Its retained events with seqs in [lo, hi], leaving out the `skip` oldest (to be
        taken before the history changes: before the loop's next turn)."""
        events = self.events
        if skip < len(events) and events[skip].seq >= lo and events[-1].seq <= hi:
            yield from itertools.islice(events, skip, None)  # all (a one-run channel)
            return
        i = max(skip, bisect.bisect_left(events, lo, key=lambda e: e.seq))
        while i < len(events) and events[i].seq <= hi:
            yield events[i]
            i += 1


class Reads:
    """Paged reads over the channel index and the seq index of one memory broker."""

    def __init__(
        self, index: ChannelIndex[History], runs: SeqIndex[History], max_age: float
    ) -> None:
        self._index = index
        self._runs = runs
        self._max_age = max_age

    def _few(self, patterns: Sequence[Pattern], since: int) -> list[tuple[int, History]] | None:
        """The channels matching `patterns` touched after `since`, each under its first
        pattern, if there are at most FEW of them (None: more)."""
        return matching(self._index, patterns, since, FEW)

    async def after(
        self,
        patterns: Sequence[Pattern],
        since: int,
        upto: int,
        count: bool,
        size: PageSize,
        floor: int,
    ) -> AsyncGenerator[tuple[Page, list[Loss]], None]:
        """Pages of events in (since, upto] and, with each, what its channels lost in its
        range, per pattern (counted only if `count`: a read after a reset reports none)."""
        channels = self._few(patterns, since)
        if channels is None:
            pages = self._walk_after(patterns, since, upto, count, size, floor)
        else:
            pages = self._merge_after(channels, len(patterns), since, upto, count, size, floor)
        async for page in pages:
            yield page

    async def _merge_after(
        self,
        channels: list[tuple[int, History]],
        npatterns: int,
        since: int,
        upto: int,
        count: bool,
        size: PageSize,
        floor: int,
    ) -> AsyncGenerator[tuple[Page, list[Loss]], None]:
        pos = since
        while True:
            cutoff = time.monotonic() - self._max_age
            stale = [h.stale(cutoff) for _, h in channels]
            runs = (
                (e for e in h.held(pos + 1, upto, s) if e.severity >= floor)
                for (_, h), s in zip(channels, stale, strict=True)
            )
            page = _fill(heapq.merge(*runs, key=lambda e: e.seq), size, upto)
            losses = _none_lost(npatterns)
            if count:
                for (i, history), s in zip(channels, stale, strict=True):
                    losses[i].add(*history.lost_between(pos, page.next, s))
            yield page, losses
            if page.end:
                return
            pos = page.next

    async def _walk_after(
        self,
        patterns: Sequence[Pattern],
        since: int,
        upto: int,
        count: bool,
        size: PageSize,
        floor: int,
    ) -> AsyncGenerator[tuple[Page, list[Loss]], None]:
        losses, pos = _none_lost(len(patterns)), since
        while True:
            page = await self._walk_page(patterns, pos, upto, losses, count, size, floor)
            yield page, losses
            if page.end:
                return
            pos, losses = page.next, _none_lost(len(patterns))

    async def _count_before(
        self, patterns: Sequence[Pattern], since: int, upto: int, losses: list[Loss]
    ) -> None:
        """Add to `losses` what matching channels lost in (since, upto], from their own
        records (the seq index no longer places those seqs), CHANNEL_SLICE at a turn."""
        for n, (i, history) in enumerate(matching(self._index, patterns, since) or [], 1):
            losses[i].add(*history.lost_between(since, upto, 0))
            if n % CHANNEL_SLICE == 0:
                await asyncio.sleep(0)

    async def _walk_page(
        self,
        patterns: Sequence[Pattern],
        pos: int,
        upto: int,
        losses: list[Loss],
        count: bool,
        size: PageSize,
        floor: int,
    ) -> Page:
        """One page of a walk forward from `pos`: what is still retained of each matching
        run, and (into `losses`, if `count`) what is not: a run's missing seqs are its
        oldest (a channel loses its oldest first), all before what it still holds."""
        cutoff = time.monotonic() - self._max_age
        which = _Matcher(patterns)
        counted: set[str] = set()  # channels with a loss in this page
        page, held = Page(), 0
        for passed, (owner, lo, hi) in enumerate(self._runs.forward(pos, upto), 1):
            if passed % WALK_SLICE == 0:
                await asyncio.sleep(0)
            if owner is None:  # no longer placed: all lost, as the channels' records say
                if count:
                    await self._count_before(patterns, lo - 1, hi, losses)
                continue
            i = which(owner.name)
            if i < 0:
                continue
            kept = [e for e in owner.held(lo, hi) if e.stored_at >= cutoff]
            if count and len(kept) < hi - lo + 1:
                new = owner.name not in counted
                counted.add(owner.name)
                losses[i].add(hi - lo + 1 - len(kept), kept[0].seq - 1 if kept else hi, True, new)
            for event in kept:
                if event.severity < floor:
                    continue
                if full(page, held, size):
                    page.next = event.seq - 1
                    return page
                page.events.append(event)
                held += len(event.data)
        page.next, page.end = upto, True
        return page

    async def before(
        self, patterns: Sequence[Pattern], before: int, size: PageSize, floor: int
    ) -> AsyncGenerator[Page, None]:
        """Pages of retained events below seq `before`, newest first: the matching
        channels merged when that costs less than the walk (`_merging`), else the walk."""
        channels = self._merging(patterns, size)
        pos = before
        while True:
            cutoff = time.monotonic() - self._max_age
            if channels is None:
                page = await self._walk_back(patterns, pos, cutoff, size, floor)
            else:
                page = await BackMerge(channels, cutoff).page(pos, size, floor)
            yield page
            if page.end:
                return
            pos = page.next

    def _merging(self, patterns: Sequence[Pattern], size: PageSize) -> list[History] | None:
        """The channels matching `patterns` if a page merged from them costs less than one
        found by the walk (None: walk). The merge opens each of the `m` channels once a
        page; the walk passes about `size.entries` runs times all runs over the `held`
        entries of those channels (the others' runs lie between theirs): merge while
        m * held <= size.entries * runs. Counting stops as soon as that fails, or past
        MERGE_MOST pages' worth of channels, so choosing costs at most that."""
        most = max(FEW, MERGE_MOST * size.entries)
        budget = size.entries * len(self._runs)
        found: dict[str, History] = {}
        held = 0
        for pattern in patterns:
            for history in self._index.match(pattern):
                if history.name not in found:
                    found[history.name] = history
                    held += len(history.events)
                    many = len(found) > FEW and len(found) * held > budget
                    if many or len(found) > most:
                        return None
        return list(found.values())

    async def _walk_back(
        self, patterns: Sequence[Pattern], before: int, cutoff: float, size: PageSize, floor: int
    ) -> Page:
        """One backward page, found by walking the seq index back from `before`."""
        which, fill = _Matcher(patterns), BackFill(size, floor)
        for passed, (owner, lo, hi) in enumerate(self._runs.backward(before), 1):
            if passed % WALK_SLICE == 0:
                await asyncio.sleep(0)
            if which(owner.name) < 0:
                continue
            kept = [e for e in owner.held(lo, hi) if e.stored_at >= cutoff]
            for event in reversed(kept):
                if not fill.add(event):
                    return fill.page(end=False)
        return fill.page(end=True)


def matching(
    index: ChannelIndex[History],
    patterns: Sequence[Pattern],
    since: int = -1,
    most: int | None = None,
) -> list[tuple[int, History]] | None:
    """The channels matching `patterns` touched after `since`, each once under the first
    pattern that matches it (None past `most` of them). Taken whole, in one turn: a walk
    of the index that let the loop run others between its steps could meet it changing
    (a channel added, or moved to the newest end), so work in slices follows the list."""
    found: dict[str, tuple[int, History]] = {}
    for i, pattern in enumerate(patterns):
        for history in index.match(pattern, since):
            found.setdefault(history.name, (i, history))
            if most is not None and len(found) > most:
                return None
    return list(found.values())


class _Matcher:
    """Which of `patterns` first matches a channel (-1: none), remembered per name (for
    MATCHES_KEPT names: a walk passes a busy channel's runs again and again)."""

    def __init__(self, patterns: Sequence[Pattern]) -> None:
        self._patterns = patterns
        self._known: dict[str, int] = {}
        # `logs:>` and the like: a prefix says it (and each channel is new to a wide walk).
        self._prefixes: tuple[str, ...] | None = None
        if all(p.segments[-1] == ">" and "*" not in p.segments for p in patterns):
            self._prefixes = tuple(":".join(p.segments[:-1]) + ":" for p in patterns)

    def __call__(self, name: str) -> int:
        if self._prefixes is not None:
            if not name.startswith(self._prefixes):  # (a tuple: one call for them all)
                return -1
            return next(i for i, p in enumerate(self._prefixes) if name.startswith(p))
        found = self._known.get(name)
        if found is None:
            found = next((i for i, p in enumerate(self._patterns) if p.matches(name)), -1)
            if len(self._known) >= MATCHES_KEPT:
                self._known.clear()
            self._known[name] = found
        return found


def _none_lost(n: int) -> list[Loss]:
    return [Loss(exact=True) for _ in range(n)]


def _fill(events: Iterable[Event], size: PageSize, upto: int) -> Page:
    """A forward page of `events` (in seq order) within `size`."""
    page, held = Page(), 0
    for event in events:
        if full(page, held, size):
            page.next = page.events[-1].seq
            return page
        page.events.append(event)
        held += len(event.data)
    page.next, page.end = upto, True
    return page
