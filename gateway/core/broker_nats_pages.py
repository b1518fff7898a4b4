"""The NATS broker's reads as pages (Broker.read_after, Broker.read_before).

A forward read takes the stream's state when it begins and reads nothing past its newest
event: what is stored later comes live. It follows the stream from the cursor's message
through one consumer per pattern (broker_nats_read), a page of entries at a time, so a
stream holds one page and a read costs what matches.

What each channel lost after the cursor is counted as the read meets it (DESIGN §3.2, "On
NATS"): the first message read on a channel names the channel's previous message and the
start of its life, and each later one follows the last read on by offset, so an entry
trimmed while the read goes on is counted, never skipped in silence. The count is exact
while the cursor is no older than the stream's first message, or the channel's life began
after it, or the cursor's own message is the one just before what the channel holds;
otherwise (and always for a cursor older than the stream's front, since a channel emptied
by age or bytes leaves nothing in the stream) each pattern gets one "expired" gap, at
least what was counted, in the last page. Gaps never take an id back: one goes in the page
that revealed it, placed no earlier than the previous page's end.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from gateway.core.broker import Gap, Loss, Page, PageSize
from gateway.core.broker_nats_codec import Stored
from gateway.core.broker_nats_read import Reader
from gateway.core.broker_nats_subjects import event_seq, last_event, message_of
from gateway.core.channels import Pattern
from gateway.core.cursor import Cursor
from gateway.core.events import Event

SPAN_MAX = 1 << 16  # most stream messages one window of a backward read covers


@dataclass(slots=True)
class _Read:
    """A channel as far as a forward read has got on it."""

    pattern: int  # index of the first pattern matching it
    end_offset: int  # the offset after the last message read on it
    life: int


async def read_after(
    reader: Reader,
    patterns: Sequence[Pattern],
    after: Cursor,
    epoch: str,
    size: PageSize,
    min_severity: int,
    max_age: float,
) -> AsyncGenerator[Page, None]:
    state = await reader.state()
    upto = await reader.head()
    reset = after.epoch != epoch
    since = 0 if reset else after.seq
    front = reset or message_of(since)[0] >= state.first_seq - 1
    forgotten = event_seq(state.first_seq, 0) - 1 if state.first_seq > 1 else 0
    losses = [Loss(exact=front) for _ in patterns]
    channels: dict[str, _Read] = {}
    page, floor, size_bytes = Page(), since, 0
    if reset:
        page.gaps = [Gap(p.text, 0, "reset") for p in patterns]
    cutoff = time.time() - max_age
    start = max(message_of(since)[0], 1)
    async for message in reader.merged(patterns, start, message_of(upto)[0]):
        fresh = [e for e in message.events() if since < e.seq <= upto]
        if not reset:
            index = _account(channels, patterns, message, since, losses)
            if fresh and message.stored_at < cutoff:  # past the age bound, not yet expired
                losses[index].add(len(fresh), fresh[-1].seq, True)
        if message.stored_at < cutoff:
            continue
        for event in fresh:
            if event.severity < min_severity:
                continue
            page.events.append(event)
            size_bytes += len(event.data)
            if len(page.events) >= size.entries or size_bytes >= size.bytes:
                page.next = event.seq
                if front:
                    page.gaps += _due(patterns, losses, floor)
                yield page
                page, floor, size_bytes = Page(), event.seq, 0
    page.next, page.end = max(upto, since if not reset else 0), True
    if front:
        page.gaps += _due(patterns, losses, floor)
    else:
        page.gaps += [
            Gap(p.text, loss.lost, "expired", loss.channels, max(loss.newest, forgotten, floor))
            for p, loss in zip(patterns, losses, strict=True)
        ]
    page.gaps.sort(key=lambda g: g.seq)
    yield page


def _account(
    channels: dict[str, _Read],
    patterns: Sequence[Pattern],
    message: Stored,
    since: int,
    losses: list[Loss],
) -> int:
    """Count what `message`'s channel lost before it (after the cursor); returns the
    index of the pattern the channel is counted under."""
    read = channels.get(message.channel)
    if read is None:
        index = next(i for i, p in enumerate(patterns) if p.matches(message.channel))
        losses[index].add(*_lost_before(message, since))
        read = channels[message.channel] = _Read(index, 0, message.life)
    elif message.life != read.life:  # the channel emptied and began again meanwhile
        newest = last_event(message.prev, message.prev_count)
        losses[read.pattern].add(message.offset, newest, False)
    elif message.offset > read.end_offset:  # trimmed while the read went on
        newest = last_event(message.prev, message.prev_count)
        losses[read.pattern].add(message.offset - read.end_offset, newest, True)
    read.end_offset, read.life = message.offset + message.count, message.life
    return read.pattern


def _lost_before(first: Stored, since: int) -> tuple[int, int, bool]:
    """What a channel lost between cursor `since` and `first`, the first message read on
    it (at or after the cursor's message): (count, newest lost seq, whether exact)."""
    start, index = message_of(since)
    prev, prev_count = first.prev, first.prev_count
    if first.seq == start or prev < start:  # the cursor is in it, or before its previous
        return 0, 0, True
    newest = last_event(prev, prev_count)
    if prev == start:  # the cursor's own message, gone: its entries after the cursor
        return max(prev_count - index - 1, 0), newest, True
    if first.life > start:  # every entry of this life before `first` followed the cursor
        return first.offset, newest, True
    if first.life == start:  # the life began in the cursor's message
        return first.offset - index - 1, newest, True
    return prev_count, newest, False  # at least the previous message's entries


def _due(patterns: Sequence[Pattern], losses: list[Loss], floor: int) -> list[Gap]:
    """The gaps counted since the last page (each placed no earlier than `floor`), and
    the counts started again."""
    gaps = []
    for i, (pattern, loss) in enumerate(zip(patterns, losses, strict=True)):
        if loss.lost:
            reason = "trimmed" if loss.exact else "expired"
            gaps.append(
                Gap(pattern.text, loss.lost, reason, loss.channels, max(loss.newest, floor))
            )
            losses[i] = Loss(exact=True)
    return gaps


async def read_before(
    reader: Reader,
    patterns: Sequence[Pattern],
    before: int | None,
    size: PageSize,
    min_severity: int,
    max_age: float,
) -> AsyncGenerator[Page, None]:
    """Windows of the stream read forward, newest window first, each cut into pages from
    its newest end: a window covers `size.entries` messages first and four times as many
    each time one finds nothing (up to SPAN_MAX)."""
    state = await reader.state()
    bound = before if before is not None else await reader.head() + 1
    high = min(message_of(bound)[0], state.last_seq)
    span = max(size.entries, 1)
    cutoff = time.time() - max_age
    while True:
        low = max(high - span + 1, state.first_seq, 1)
        events: list[Event] = []
        async for message in reader.merged(patterns, low, high):
            if message.stored_at < cutoff:
                continue
            events += (e for e in message.events() if e.seq < bound and e.severity >= min_severity)
        at_start = low <= max(state.first_seq, 1)
        span = span if events else min(span * 4, SPAN_MAX)
        chunks = [
            events[max(i - size.entries, 0) : i] for i in range(len(events), 0, -size.entries)
        ]
        for j, taken in enumerate(chunks):
            yield Page(events=taken, next=taken[0].seq, end=at_start and j == len(chunks) - 1)
        if at_start:
            if not chunks:
                yield Page(end=True)
            return
        high = low - 1
