"""The Broker protocol: channel history and the feed of new events.

Two implementations satisfy it: `broker_memory` (one process) and `broker_redis` (several
instances). tests/test_broker_contract.py holds each to the guarantees below, and both take
the same limits (`max_entries`, `max_age`, `dedup_seconds`, `dedup_batches`: settings of
the app, passed in), so they keep the same promises by construction.

Channels are ephemeral (DESIGN §3.1): a channel exists while it
holds retained entries. Once its last entry has expired (by age, by count, or to keep the
broker under its byte bound) the broker keeps only a record of what it lost, for
`GAP_MEMORY` history windows, and then forgets it; a later entry starts it again, its
offsets from 0. Cursors are broker-wide seqs, so they stay exact across that: a resume whose
cursor predates a loss gets a `Gap` that counts it, never a silent loss.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
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


# How many history windows (`max_age`) a channel's record of lost entries outlives its last
# entry: a resume within that time gets an exact count; an older one, an "expired" gap.
GAP_MEMORY = 2


@dataclass(frozen=True, slots=True)
class Gap:
    """Entries after the cursor, on channels matching `pattern`, no longer in history.

    One per subscribed pattern at most. `reason`: "trimmed" (past a history bound: exactly
    `lost` entries of `channels` channels), "expired" (the cursor predates what the broker
    still remembers of its losses: at least `lost`), "reset" (history itself was lost: a new
    epoch; `lost` unknown, 0). `seq` places the gap in the replay: every lost entry it counts
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

    def add(self, lost: int, newest: int, exact: bool) -> None:
        self.lost += lost
        self.channels += lost > 0
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
    (None where the broker cannot tell cheaply), entries evicted so far by cause, and the
    bytes kept to recognise resent batches (None where they are not in this process)."""

    channels: int
    entries: int | None = None
    bytes: int | None = None
    evicted: dict[str, int] = field(default_factory=dict)  # "age", "count", "memory"
    dedup_bytes: int | None = None


@dataclass(slots=True)
class Replay:
    """What a client missed: retained events in seq order, and the gaps in seq order
    (a gap goes out after the events whose seq is at most its own)."""

    gaps: list[Gap] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def last(self) -> int:
        """The seq the replay brings a client to (0 when it brings nothing)."""
        return max(self.events[-1].seq if self.events else 0, self.gaps[-1].seq if self.gaps else 0)

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


class Broker(Protocol):
    @property
    def epoch(self) -> str:
        """Names the current life of the history; it changes whenever history is lost."""
        ...

    async def append(self, entries: Sequence[Entry], key: DedupKey | None) -> Appended:
        """Returns only after every entry is in its channel's history; a key seen before
        returns the first result again (duplicate=True) and stores nothing."""
        ...

    async def head(self) -> int:
        """Seq of the newest stored event (0 when none): where a live-only reader starts."""
        ...

    async def replay(self, patterns: Sequence[Pattern], after: Cursor) -> Replay:
        """Retained events after `after` on channels matching `patterns`, in seq order,
        and at most one Gap per pattern for what those channels lost after the cursor.
        Costs what matches and what is returned, never every channel held."""
        ...

    async def tail(self, patterns: Sequence[Pattern], count: int, min_severity: int) -> list[Event]:
        """The `count` newest retained events of at least `min_severity` on channels
        matching `patterns`, oldest first. Costs the channels matched and what is returned."""
        ...

    def add_listener(self, listener: Listener) -> None:
        """`listener` is called on the event loop with each batch of new events, in seq
        order, exactly once per event (including events stored by other instances)."""
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
    """A broker whose live delivery can skip events (Redis: its feed trimmed past a slow
    instance, or its data lost); one that cannot (memory) lacks this ability."""

    def on_resync(self, callback: Callable[[], None]) -> None:
        """`callback` runs when live delivery had to skip events: live subscribers must
        resume from history."""
        ...


async def catch_up(
    broker: Broker,
    patterns: Sequence[Pattern],
    cursor: Cursor | None,
    tail: int = 0,
    min_severity: int = 0,
) -> tuple[Replay, int]:
    """What a new subscription must be sent first, and the seq after which live events
    are new to it: the head for a live start (after the `tail` newest entries, if asked),
    the cursor when resuming in the same epoch, 0 (everything held) after a reset. A
    cursor wins over `tail`: a resume is exact."""
    if cursor is None:
        head = await broker.head()
        # Read after the head: an entry stored between the two is in the tail, and the
        # subscription's seq filter (Replay.last) keeps it from coming twice.
        recent = await broker.tail(patterns, tail, min_severity) if tail else []
        return Replay(events=recent), head
    replay = await broker.replay(patterns, cursor)
    return replay, cursor.seq if cursor.epoch == broker.epoch else 0
