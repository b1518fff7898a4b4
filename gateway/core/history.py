"""History pages for a viewer (GET /api/logs/history, LogStream.History): a bounded range
of retained entries before or after a cursor, or from a time, with the cursors to go on
from and, at the start of retained history, what went before it.

Built on the broker's paged reads (Broker.read_before, Broker.read_after): an answer holds
at most `limit` entries and reads about that much, however many channels match; each
broker page is read in the process's shared read turns (catch_up.CatchUp), so many viewers
paging at once leave every loop turn short."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field

from gateway.core.broker import Broker, Gap, Page, PageSize
from gateway.core.channels import Pattern
from gateway.core.cursor import Cursor, decode_cursor
from gateway.core.errors import invalid
from gateway.core.events import Event, decode_data, parse_time

HISTORY_MOST = 1_000  # entries one answer holds at most
SEARCH_PROBES = 64  # reads a time search makes at most (a binary search over 2^53 seqs: 53)


@dataclass(slots=True)
class Window:
    """A range of retained entries in seq order (and, forward, the gaps among them).

    `older`: the seq to read back from (`before`) for what precedes it, None once `start`
    (nothing older is retained; then `lost` says what went before). `newer`: the seq to
    read on after (`after`); `end`, whether that reached what was stored when the read
    began (what comes later is live)."""

    events: list[Event] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    older: int | None = None
    newer: int = 0
    start: bool = False
    end: bool = False
    lost: list[Gap] = field(default_factory=list)

    def page(self) -> Page:
        """Its entries and gaps as a broker Page (for Page.in_order)."""
        return Page(self.events, self.gaps, self.newer, self.end)


def position(text: str | None, name: str, epoch: str) -> int | None:
    """A cursor parameter (`before`, `after`) as a seq of this history (None when absent);
    one this gateway did not issue, or from a history since lost, is refused by name."""
    if not text:
        return None
    cursor = decode_cursor(text)
    if cursor is None:
        raise invalid(f"{name!r}: {text[:80]!r} is not a cursor this gateway issued")
    if cursor.epoch != epoch:
        raise invalid(
            f"{name!r}: cursor {text[:80]!r} is from a history this gateway no longer holds "
            "(it restarted or lost its data); start again without it"
        )
    return cursor.seq


async def read(
    broker: Broker,
    patterns: Sequence[Pattern],
    where: Mapping[str, str],
    limit: int,
    min_severity: int,
    turns: asyncio.Semaphore,
) -> Window:
    """The window `where` asks for: at most one of `before`, `after` (cursors) and `since`
    (an RFC 3339 UTC time); none: the newest."""
    given = [name for name in ("before", "after", "since") if where.get(name)]
    if len(given) > 1:
        raise invalid(f"{' and '.join(map(repr, given))}: give at most one of them")
    epoch, args = broker.epoch, (limit, min_severity, turns)
    if given == ["after"]:
        seq = position(where["after"], "after", epoch) or 0
        return await after(broker, patterns, Cursor(epoch, seq), *args)
    if given == ["since"]:
        try:
            time_ns = parse_time(where["since"])
        except ValueError:
            raise invalid(
                f"'since': {where['since'][:80]!r} must be an RFC 3339 UTC time like "
                "2026-12-07T10:00:00Z"
            ) from None
        seq = await seq_at(broker, patterns, time_ns, min_severity)
        return await after(broker, patterns, Cursor(epoch, seq), *args)
    return await before(broker, patterns, position(where.get("before"), "before", epoch), *args)


async def _pages(
    pages: AsyncGenerator[Page, None], turns: asyncio.Semaphore
) -> AsyncGenerator[Page, None]:
    """The broker's pages, each read in a turn of the process's history reads."""
    async with contextlib.aclosing(pages):
        while True:
            async with turns:
                page = await anext(pages, None)
            if page is None:
                return
            yield page


async def before(
    broker: Broker,
    patterns: Sequence[Pattern],
    seq: int | None,
    limit: int,
    min_severity: int,
    turns: asyncio.Semaphore,
) -> Window:
    """The `limit` newest entries before `seq` (None: the newest of all)."""
    window = Window(newer=seq - 1 if seq is not None else await broker.head(), end=seq is None)
    size = PageSize(entries=limit)
    pages = _pages(broker.read_before(patterns, seq, size, min_severity), turns)
    async with contextlib.aclosing(pages):
        async for page in pages:
            window.events[:0] = page.events
            if len(window.events) >= limit or page.end:
                window.start = page.end and len(window.events) <= limit
                break
        else:
            window.start = True
    window.events = window.events[-limit:]
    if window.start:
        window.lost = await broker.lost(patterns)
    elif window.events:
        window.older = window.events[0].seq
    return window


async def after(
    broker: Broker,
    patterns: Sequence[Pattern],
    cursor: Cursor,
    limit: int,
    min_severity: int,
    turns: asyncio.Semaphore,
) -> Window:
    """The `limit` oldest entries after `cursor`, and the gaps among them."""
    window = Window(newer=cursor.seq)
    size = PageSize(entries=limit)
    pages = _pages(broker.read_after(patterns, cursor, size, min_severity), turns)
    async with contextlib.aclosing(pages):
        async for page in pages:
            room = limit - len(window.events)
            window.events += page.events[:room]
            if len(page.events) > room:  # go on after the last one taken
                window.newer = window.events[-1].seq
                window.gaps += [g for g in page.gaps if g.seq <= window.newer]
                break
            window.gaps += page.gaps
            window.newer, window.end = page.next, page.end
            if len(window.events) >= limit:
                break
    if window.events:
        window.older = window.events[0].seq
    return window


async def seq_at(
    broker: Broker, patterns: Sequence[Pattern], time_ns: int, min_severity: int
) -> int:
    """The seq after which the matching entries stamped at `time_ns` or later begin: a
    binary search over seqs, each probe one entry read back from the broker (so at most
    SEARCH_PROBES short reads, however much is retained). Entry times are the publishers'
    and mostly rise with seq; where they do not, the start found lies among the entries
    stamped near `time_ns`."""
    low, high = 0, await broker.head()
    for _ in range(SEARCH_PROBES):
        if low >= high:
            break
        middle = (low + high + 1) // 2
        probe = await _newest_upto(broker, patterns, middle, min_severity)
        if probe is None or _time_ns(probe) < time_ns:
            low = middle  # everything matching up to `middle` came before the time
        else:
            high = probe.seq - 1  # the start lies before this entry
    return low


async def _newest_upto(
    broker: Broker, patterns: Sequence[Pattern], seq: int, min_severity: int
) -> Event | None:
    pages = broker.read_before(patterns, seq + 1, PageSize(entries=1), min_severity)
    async with contextlib.aclosing(pages):
        async for page in pages:
            if page.events:
                return page.events[-1]
    return None


def _time_ns(event: Event) -> int:
    return parse_time(str(decode_data(event.data)["time"]))
