"""Whole reads of a broker's history, joined from its pages (for tests that check what a
read returns, not how it is paged)."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.core.broker import PAGE, Broker, Page, PageSize
from gateway.core.catch_up import tail_start
from gateway.core.channels import Pattern
from gateway.core.cursor import Cursor
from gateway.core.events import Event


async def read_all(
    broker: Broker, patterns: Sequence[Pattern], after: Cursor, size: PageSize = PAGE
) -> Page:
    """Every page of `read_after` joined into one; checks that pages follow each other."""
    whole = Page()
    async for page in broker.read_after(patterns, after, size):
        assert not whole.end, "a page after the last"
        assert len(page.events) <= size.entries
        assert all(e.seq <= page.next for e in page.events)
        assert all(e.seq > whole.next for e in page.events)
        whole.events += page.events
        whole.gaps += page.gaps
        whole.next, whole.end = page.next, page.end
    assert whole.end, "no last page"
    return whole


async def tail(
    broker: Broker,
    patterns: Sequence[Pattern],
    count: int,
    min_severity: int = 0,
    size: PageSize = PAGE,
) -> list[Event]:
    """The `count` newest events, as a tail start reads them (oldest first)."""
    start = await tail_start(broker, patterns, count, min_severity, size)
    events: list[Event] = []
    async for page in broker.read_after(patterns, Cursor(broker.epoch, start), size, min_severity):
        events += page.events
    return events
