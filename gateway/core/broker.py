"""The Broker protocol: channel history and the feed of new events.

Two implementations satisfy it: `broker_memory` (one process) and `broker_redis` (several
instances). tests/test_broker_contract.py holds each to the guarantees below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gateway.core.channels import Pattern
from gateway.core.cursor import Cursor
from gateway.core.events import Entry, Event

Listener = Callable[[list[Event]], None]
DedupKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Appended:
    """What `append` stored: one event per entry, in order."""

    events: list[Event]
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Gap:
    """Entries of `channel` after the cursor that are no longer in history."""

    channel: str
    lost: int
    reason: str  # "trimmed" (history bound) or "reset" (history lost: new epoch)


@dataclass(slots=True)
class Replay:
    """What a client missed: gaps first, then retained events in seq order."""

    gaps: list[Gap] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


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
        with a Gap for every channel that lost events after the cursor."""
        ...

    def add_listener(self, listener: Listener) -> None:
        """`listener` is called on the event loop with each batch of new events, in seq
        order, exactly once per event (including events stored by other instances)."""
        ...

    async def ready(self) -> bool:
        """Whether the broker can store and deliver now."""
        ...

    def channel_count(self) -> int:
        """How many channels hold history."""
        ...

    async def close(self) -> None:
        """Release resources; safe to call twice."""
        ...


async def catch_up(
    broker: Broker, patterns: Sequence[Pattern], cursor: Cursor | None
) -> tuple[Replay, int]:
    """What a new subscription must be sent first, and the seq after which live events
    are new to it: the head for a live-only start, the cursor when resuming in the same
    epoch, 0 (everything held) after a reset."""
    if cursor is None:
        return Replay(), await broker.head()
    replay = await broker.replay(patterns, cursor)
    return replay, cursor.seq if cursor.epoch == broker.epoch else 0
