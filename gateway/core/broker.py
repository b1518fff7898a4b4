"""The Broker protocol: channel history and the feed of new events.

Three implementations satisfy it: `broker_memory` (one process), `broker_redis` (several
instances) and `broker_nats` (several instances on a NATS JetStream cluster).
tests/test_broker_contract.py holds each to the guarantees below, and all take the same
`Limits` (settings of the app, passed in), so they keep the same promises by construction.
Where NATS keeps a weaker form of one, the guarantee says so ("On NATS").

Channels are ephemeral (DESIGN §3.1): a channel exists while it
holds retained entries. Once its last entry has expired (by age, by count, or to keep the
broker under its byte bound) the broker keeps only a record of what it lost, for
`GAP_MEMORY` history windows, and then forgets it; a later entry starts it again, its
offsets from 0. Cursors are broker-wide seqs, so they stay exact across that: a resume whose
cursor predates a loss gets a `Gap` that counts it, never a silent loss.

History is read in pages (`read_after`, `read_before`), from a cursor or from the newest;
no read starts at a time: neither broker keeps an index from time to seq (the memory
broker's events carry only a monotonic store time, Redis's entry ids begin with the seq),
so a start by time costs a walk back (`read_before`) to the first older entry.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from gateway.core.channels import Pattern
from gateway.core.cursor import Cursor
from gateway.core.discovery import ChannelInfo
from gateway.core.events import Entry, Event

Listener = Callable[[list[Event]], None]
DedupKey = tuple[str, int]


@dataclass(slots=True)  # one per batch: not frozen, for the reason Entry is not (events.py)
class Appended:
    """What `append` stored: one event per entry, in order."""

    events: list[Event]
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Limits:
    """What every broker keeps: `max_entries` per channel for `max_age` seconds, at most
    `max_bytes` of all history (memory and NATS; Redis is bounded by its maxmemory), and a
    producer's batches recognised when resent for `dedup_seconds` (on memory and Redis
    its newest `dedup_batches`; on memory within `max_dedup_bytes` in all)."""

    max_entries: int
    max_age: float
    max_bytes: int
    dedup_seconds: float
    dedup_batches: int
    max_dedup_bytes: int


# How many history windows (`max_age`) a channel's record of lost entries outlives its last
# entry: a resume within that time gets an exact count; an older one, an "expired" gap.
GAP_MEMORY = 2


@dataclass(frozen=True, slots=True)
class Gap:
    """Entries after the cursor, on channels matching `pattern`, no longer in history.

    One per subscribed pattern at most for the range of seqs one page read (DESIGN §3.2).
    `reason`: "trimmed" (past a history bound: exactly `lost` entries of `channels`
    channels), "expired" (the cursor predates what the broker still remembers of its
    losses: at least `lost`), "reset" (history itself was lost: a new epoch; `lost`
    unknown, 0). `seq` places the gap in the replay: every lost entry it counts
    came before it, so its cursor resumes after the loss instead of reporting it again.
    """

    pattern: str
    lost: int
    reason: str
    channels: int = 0
    seq: int = 0


@dataclass(slots=True)
class Loss:
    """What the channels of one pattern lost after a cursor: the Gap both brokers report."""

    exact: bool  # False once any count is only a lower bound
    lost: int = 0
    channels: int = 0
    newest: int = 0

    def add(self, lost: int, newest: int, exact: bool, new: bool = True) -> None:
        """Add one channel's loss (`new`: a channel not counted before)."""
        self.lost += lost
        self.channels += lost > 0 and new
        self.newest = max(self.newest, newest)
        self.exact = self.exact and exact

    def gap(self, pattern: str, reset: bool, forgotten: int) -> Gap | None:
        """The pattern's gap, if it has one; `forgotten` is the newest seq of any channel
        the broker no longer remembers (DESIGN §3.2)."""
        if reset:
            return Gap(pattern, 0, "reset")
        if not self.exact:
            return Gap(pattern, self.lost, "expired", self.channels, max(self.newest, forgotten))
        if self.lost:
            return Gap(pattern, self.lost, "trimmed", self.channels, self.newest)
        return None

    @staticmethod
    def gaps(
        patterns: Sequence[Pattern], losses: list[Loss], reset: bool, forgotten: int
    ) -> list[Gap]:
        """One gap at most per pattern, in seq order."""
        found = (
            loss.gap(p.text, reset, forgotten) for p, loss in zip(patterns, losses, strict=True)
        )
        return sorted((g for g in found if g is not None), key=lambda g: g.seq)


@dataclass(frozen=True, slots=True)
class Usage:
    """What a broker holds: channels with retained entries, those entries, their bytes
    (None where the broker cannot tell cheaply), entries evicted so far by cause, the
    bytes kept to recognise resent batches (None where they are not in this process), and
    the reads refused or answered as a lower bound at a bound of the broker's own, by
    bound."""

    channels: int
    entries: int | None = None
    bytes: int | None = None
    evicted: dict[str, int] = field(default_factory=dict)  # "age", "count", "memory"
    dedup_bytes: int | None = None
    bounds_reached: Mapping[str, int] = field(default_factory=dict)


# A page's bounds: what one read of history holds in memory and costs the loop (or Redis)
# before the reader takes its turn again.
PAGE_ENTRIES = 500
PAGE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class PageSize:
    """At most `entries` events of at most about `bytes` bytes of data (a page always holds
    at least one event when any is left, however large it is)."""

    entries: int = PAGE_ENTRIES
    bytes: int = PAGE_BYTES


PAGE = PageSize()


@dataclass(slots=True)
class Page:
    """One bounded read of history: events in seq order (in both directions), the gaps in
    seq order (forward reads only: a gap goes out after the events whose seq is at most its
    own), `next`, the seq a following read goes on from (`after=next` forward, `before=next`
    backward), and `end`: forward, the read has reached the seq it started at (what was
    stored later comes live); backward, nothing older is retained (the start of history)."""

    events: list[Event] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    next: int = 0
    end: bool = False

    def in_order(self) -> list[Event | Gap]:
        """Events and gaps as they are sent: each gap after the events up to its seq."""
        out: list[Event | Gap] = []
        events, start = self.events, 0
        for gap in self.gaps:
            end = bisect.bisect_right(events, gap.seq, lo=start, key=lambda e: e.seq)
            out += events[start:end]
            out.append(gap)
            start = end
        out += events[start:]
        return out


def place_gaps(gaps: list[Gap], page: Page) -> list[Gap]:
    """Give `page` the gaps its events reach (every one, if it is the last), in seq order,
    so no id a stream sends goes back; returns the others, for a later page."""
    due = sorted((g for g in gaps if page.end or g.seq <= page.next), key=lambda g: g.seq)
    page.gaps = due
    return [g for g in gaps if not (page.end or g.seq <= page.next)]


async def with_gaps(
    pages: AsyncIterator[tuple[Page, list[Loss]]],
    patterns: Sequence[Pattern],
    reset: bool,
    since: int,
    forgotten: int,
) -> AsyncGenerator[Page, None]:
    """A forward read's pages with their gaps (DESIGN §3.2), from what each page's range
    lost per pattern: the first page's counts are exact only if the cursor `since` is no
    older than `forgotten` (the newest seq of any channel the broker forgot); after a
    `reset`, one "reset" gap per pattern and no counts. Each gap goes in the page its
    events reach (place_gaps). Written once for the brokers that count so."""
    held: list[Gap] = []
    first = True
    async for page, losses in pages:
        if reset:
            losses = [Loss(exact=True) for _ in patterns]
        elif first:
            for loss in losses:
                loss.exact = loss.exact and since >= forgotten
        if losses:
            held += Loss.gaps(patterns, losses, reset and first, forgotten)
        held = place_gaps(held, page)
        first = False
        yield page


class Broker(Protocol):
    @property
    def epoch(self) -> str:
        """Names the current life of the history; it changes whenever history is lost."""
        ...

    async def append(self, entries: Sequence[Entry], key: DedupKey | None) -> Appended:
        """Returns only after every entry is in its channel's history; a key seen before
        returns the first result again (duplicate=True) and stores nothing.

        Seqs increase in the order entries are stored, offsets by one per channel. On NATS
        seqs are not dense (a message's stream seq times 1024 plus the entry's place), the
        entries of one batch are stored channel by channel (so a batch's seqs follow its
        channels, not its order across them), and a key is recognised for the stream's
        duplicate window (`dedup_seconds`) whatever the number of later batches; an empty
        batch stores no message there, so its key is not remembered (its answer is empty
        either way)."""
        ...

    async def head(self) -> int:
        """Seq of the newest stored event (0 when none): where a live-only reader starts."""
        ...

    def read_after(
        self,
        patterns: Sequence[Pattern],
        after: Cursor,
        size: PageSize = PAGE,
        min_severity: int = 0,
    ) -> AsyncGenerator[Page, None]:
        """Retained events after `after` on channels matching `patterns` (each channel once,
        of at least `min_severity`), page by page in seq order, up to the newest seq stored
        when the read began: the last page has `end` set and `next` at that seq, after which
        live delivery takes over. A cursor of another epoch reads everything retained.

        Gaps: at most one per pattern, for what its channels lost after the cursor, counted
        when the read begins (exactly, as `Gap` says) and sent in the page whose events
        reach its seq (or the last). A read resumed from any page's `next`, or from any
        event's or gap's seq, reports only what was lost after it.

        Each page is read when the reader asks for it, so a stream holds one page at a
        time; the work of each (on the loop, and in Redis) is bounded by the page, and the
        work of finding the matching channels is done in bounded slices between which the
        loop runs others. Pages may hold fewer events than `size` allows (never none
        unless it is the last)."""
        ...

    def read_before(
        self,
        patterns: Sequence[Pattern],
        before: int | None,
        size: PageSize = PAGE,
        min_severity: int = 0,
    ) -> AsyncGenerator[Page, None]:
        """Retained events before seq `before` (None: the newest) on channels matching
        `patterns`, of at least `min_severity`, newest pages first; each page's events are
        in seq order and `next` is where the next (older) page ends. The page that reaches
        the oldest retained event has `end` set. No gaps: what is gone lies before `end`.
        Costs what it returns, however many channels match (a tail of `logs:>` over
        100,000 channels reads about what it returns, not every channel)."""
        ...

    def add_listener(self, listener: Listener) -> None:
        """`listener` is called on the event loop with each batch of new events, in seq
        order, exactly once per event (including events stored by other instances), for
        at least every channel a watched pattern matches (`watch`)."""
        ...

    async def watch(self, pattern: Pattern) -> None:
        """Deliver the channels `pattern` matches to the listeners: once this returns, every
        event stored after the head (read then) reaches them. The hub calls it when the
        first subscription to a pattern arrives and `unwatch` when the last one leaves, so
        a broker may deliver only what is watched (NATS does: a gateway whose viewers
        watch nothing receives nothing); memory and Redis deliver every event anyway."""
        ...

    def unwatch(self, pattern: Pattern) -> None:
        """No subscription of this process uses `pattern` any more."""
        ...

    async def ready(self) -> bool:
        """Whether the broker can store and deliver now."""
        ...

    def usage(self) -> Usage:
        """What the broker holds now (read by /metrics and /admin/logs/stats)."""
        ...

    async def close(self) -> None:
        """Release resources; safe to call twice."""
        ...

    async def lost(self, patterns: Sequence[Pattern]) -> list[Gap]:
        """What the channels matching `patterns` lost before their oldest retained entries:
        the gaps a `read_after` from the start of this epoch reports (in `Gap`'s terms), so
        a history read that reaches the start can say what went before it. Costs the
        channels matched."""
        ...

    async def channels(
        self, patterns: Sequence[Pattern], before: int | None, limit: int
    ) -> list[ChannelInfo]:
        """The channels matching `patterns` that hold retained entries (each once), the
        `limit` whose newest seq is highest below `before` (None: any), highest first: what
        a viewer may open, by activity, a page at a time. Costs the channels matched (the
        channel index), never every channel held."""
        ...


# Abilities only some brokers have: each a protocol of its own, asked with isinstance on the
# protocol, never on a concrete broker.


@runtime_checkable
class Resyncing(Protocol):
    """A broker whose live delivery can have a hole (Redis's feed trimmed past this
    instance, NATS dropping messages for a slow consumer, a reconnect, a new epoch)."""

    def on_resync(self, callback: Callable[[], None]) -> None:
        """`callback` runs when live delivery skipped events: live subscribers must
        resume from history (the gateway ends their streams; clients resume exactly)."""
        ...


@runtime_checkable
class Opening(Protocol):
    """A broker with work to do before the gateway serves (connect, check its storage)."""

    async def open(self) -> None:
        """Raises ValueError naming the problem when the broker's storage contradicts the
        settings; an unreachable broker is not an error here (it is not ready yet)."""
        ...
