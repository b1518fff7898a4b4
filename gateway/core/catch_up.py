"""What a new subscription is sent first (its replay or tail, page by page) and the seq
after which live events are new to it: the Broker protocol's reads as a stream takes them,
in read turns shared by every stream of the process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import TypeVar

from gateway.core.broker import PAGE, Broker, Gap, Page, PageSize
from gateway.core.channels import Pattern
from gateway.core.cursor import Cursor

T = TypeVar("T")
READ_TURNS = 1  # pages a process reads at once (CatchUp)


class CatchUp:
    """What a new subscription is sent first, page by page, and the seq after which live
    events are new to it (`last`: it moves on with every page taken).

    Pages are read in `turns` shared by every stream of the process: a read yields the
    loop between its slices, but a loop turn runs every reader that is ready, so 200 of
    them at once would hold it 200 slices long. A few at a time keeps a turn short for
    everyone else; they wait, and the whole takes no longer (the work is the same)."""

    def __init__(
        self,
        pages: AsyncGenerator[Page, None] | None,
        last: int,
        turns: asyncio.Semaphore | None = None,
    ) -> None:
        self._pages = pages
        self.last = last
        self.gaps: list[Gap] = []
        self._turns = turns or asyncio.Semaphore(READ_TURNS)

    async def next_page(self) -> Page | None:
        """The next page; None once there is no more (then `last` is final)."""
        return await self.next_as(_same)

    async def next_as(self, convert: Callable[[Page], T]) -> T | None:
        """The next page as `convert` makes it, in the same turn (the SSE frames of a page
        cost about as much as reading it); None once there is no more."""
        if self._pages is None:
            return None
        async with self._turns:
            page = await anext(self._pages, None)
            if page is None:
                self._pages = None
                return None
            self.last = max(self.last, page.next)
            self.gaps += page.gaps
            return convert(page)

    async def aclose(self) -> None:
        """Let go of the read (a stream that ends before taking every page)."""
        if self._pages is not None:
            await self._pages.aclose()
        self._pages = None


def _same(page: Page) -> Page:
    return page


async def tail_start(
    broker: Broker, patterns: Sequence[Pattern], count: int, min_severity: int, size: PageSize
) -> int:
    """The seq after which the `count` newest events matching lie (0: fewer are held),
    found by walking back page by page: one page in memory, never the whole tail."""
    seen = 0
    async for page in broker.read_before(patterns, None, size, min_severity):
        if seen + len(page.events) >= count:
            return page.events[len(page.events) - (count - seen)].seq - 1
        seen += len(page.events)
    return 0


async def catch_up(
    broker: Broker,
    patterns: Sequence[Pattern],
    cursor: Cursor | None,
    tail: int = 0,
    min_severity: int = 0,
    size: PageSize = PAGE,
    turns: asyncio.Semaphore | None = None,
) -> CatchUp:
    """What a new subscription must be sent first: nothing for a live start (after the
    head), the `tail` newest entries if asked (read forward from where they start, so the
    stream sends them oldest first a page at a time), or what followed the cursor when
    resuming (everything retained after a reset). A cursor wins over `tail`: a resume is
    exact."""
    if cursor is None:
        head = await broker.head()
        if not tail:
            return CatchUp(None, head, turns)
        # Read after the head: an entry stored between the two is in the tail, and the
        # subscription's seq filter (CatchUp.last) keeps it from coming twice.
        turns = turns or asyncio.Semaphore(READ_TURNS)
        async with turns:
            start = await tail_start(broker, patterns, tail, min_severity, size)
        pages = broker.read_after(patterns, Cursor(broker.epoch, start), size, min_severity)
        return CatchUp(pages, head, turns)
    same = cursor.epoch == broker.epoch
    pages = broker.read_after(patterns, cursor, size, min_severity)
    return CatchUp(pages, cursor.seq if same else 0, turns)
