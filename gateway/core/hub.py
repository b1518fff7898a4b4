"""The fan-out: routes each new event to the subscriptions of its channel.

The broker hands new events to `deliver` in seq order. The hub only queues them; once per
loop turn (paced as FLUSH_EVERY says) `_flush` walks the queued runs (consecutive events
of one channel), encodes each run once per severity floor in use, and gives every
subscriber the same bytes. Each subscriber then does one write for everything it is owed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from gateway.core import sse
from gateway.core.admission import Admission, SharedCounts, subscribe_limit
from gateway.core.catch_up import CatchUp
from gateway.core.channels import Pattern
from gateway.core.endings import ENDINGS, End
from gateway.core.events import Event
from gateway.core.index import PatternIndex
from gateway.core.lru import Lru
from gateway.core.subscription import Subscription
from gateway.core.tally import HubCounts

log = logging.getLogger("logs_gateway.hub")

# The pause between flushes (seconds): at least this, and at least as long as the last
# flush took. An idle hub flushes at once; a busy one gathers what arrives meanwhile, so
# each subscriber gets one write for several events instead of one per event (a write
# costs far more than its bytes). Pausing as long as a flush took gives ingest at least
# half the loop when fan-out is the dearer side (one entry per POST to 1,000 subscribers):
# the next flush then carries every entry taken in meanwhile for the same cost, instead of
# one flush per entry. Adds latency only under load, at most one flush's time.
FLUSH_EVERY = 0.002


class Interest(Protocol):
    """What the hub tells the broker of the patterns its subscriptions use (the Broker
    protocol's watch and unwatch)."""

    async def watch(self, pattern: Pattern) -> None: ...

    def unwatch(self, pattern: Pattern) -> None: ...


class Hub:
    def __init__(
        self,
        *,
        epoch: Callable[[], str],
        interest: Interest | None = None,
        max_per_owner: int,
        max_streams: int,
        shared: SharedCounts | None = None,
        max_routes: int = 10_000,
        flush_every: float = FLUSH_EVERY,
    ) -> None:
        self._epoch = epoch
        self._interest = interest
        # Pattern text -> (subscriptions using it, the broker's watch of it): one watch per
        # pattern however many use it; a second user waits for the same watch.
        self._watches: dict[str, tuple[int, asyncio.Future[None]]] = {}
        self.admission = Admission(subscribe_limit(max_streams, max_per_owner), shared)
        self._subs: set[Subscription] = set()
        # Subscriptions by pattern: routing a channel costs its segments, not every pattern.
        self._patterns: PatternIndex[Subscription] = PatternIndex()
        # channel -> subscriptions matching it, for channels that have some; rebuilt after
        # any subscription comes or goes (a change is rare next to events), and bounded.
        self._routes: Lru[str, list[Subscription]] = Lru(max_routes)
        self._runs: list[tuple[str, list[Event]]] = []
        self._pending: asyncio.Handle | None = None  # the scheduled flush
        self._flush_every = flush_every
        self._next_flush = 0.0  # loop time before which no flush starts
        self._last = ("", 0)  # (epoch, seq) of the newest event the broker handed over
        self._ids = itertools.count(1)
        self._empty = asyncio.Event()
        self._empty.set()
        self.delivered = 0
        self.counts = HubCounts()

    def next_id(self) -> str:
        return f"c{next(self._ids)}"

    # -- subscriptions ----------------------------------------------------------------

    async def add(self, sub: Subscription, expires_at: float | None = None) -> None:
        """Register `sub` for live events (held until `start`); enforces the limits on
        streams in all and per token (GatewayError RATE_LIMITED past either)."""
        await self.admission.admit(sub.owner, sub.id)
        try:
            await self._watch(sub.patterns)
        except BaseException:
            self.admission.release(sub.owner, sub.id)
            raise
        self._subs.add(sub)
        self._empty.clear()
        for pattern in sub.patterns:
            self._patterns.add(pattern, sub)
        self._routes.clear()
        if expires_at is not None:  # wall-clock time, as in the token's `exp`
            delay = max(0.0, expires_at - time.time())
            sub.expiry = asyncio.get_running_loop().call_later(delay, self._expire, sub)

    def start(self, sub: Subscription, caught_up: CatchUp) -> None:
        """Switch `sub` to live delivery once its transport has sent every page of
        `caught_up` (each after the client took the last: one page in memory at a time)."""
        # Events stored but not yet flushed may be in the replay too: hand them to `sub`
        # while it still holds live events, so its seq filter drops the doubles.
        self.flush()
        self.counts.add_gaps(caught_up.gaps)
        sub.after = caught_up.last
        sub.start(self._epoch().encode(), sub.after)

    def remove(self, sub: Subscription) -> None:
        """Forget `sub` at once; safe to call twice."""
        if sub not in self._subs:
            return
        self._subs.discard(sub)
        if not self._subs:
            self._empty.set()
        self.admission.release(sub.owner, sub.id)
        if sub.expiry is not None:
            sub.expiry.cancel()
        for pattern in sub.patterns:
            self._patterns.remove(pattern, sub)
        self._unwatch(sub.patterns)
        self._routes.clear()
        sub.finish(End.CLOSED)
        # A handler cancelled by its client's disconnect cancels `done` with it.
        reason = End.CLOSED if sub.done.cancelled() else sub.done.result()
        self.counts.ended[reason] += 1
        log.log(
            ENDINGS[reason].log_level,
            "stream ended",
            extra={"connection": sub.id, "transport": sub.transport, "reason": reason.value},
        )

    async def _watch(self, patterns: tuple[Pattern, ...]) -> None:
        """Have the broker deliver what `patterns` match before the subscription reads
        its history, so no event falls between the replay and live delivery."""
        if self._interest is None:
            return
        unique = list({p.text: p for p in patterns}.values())
        for pattern in unique:
            users, watch = self._watches.get(pattern.text, (0, None))
            if watch is None:
                watch = asyncio.ensure_future(self._interest.watch(pattern))
            self._watches[pattern.text] = (users + 1, watch)
        try:
            for pattern in unique:
                await asyncio.shield(self._watches[pattern.text][1])
        except BaseException:
            self._unwatch(tuple(unique))
            raise

    def _unwatch(self, patterns: tuple[Pattern, ...]) -> None:
        if self._interest is None:
            return
        for pattern in {p.text: p for p in patterns}.values():
            users, watch = self._watches[pattern.text]
            if users > 1:
                self._watches[pattern.text] = (users - 1, watch)
                continue
            del self._watches[pattern.text]
            if not watch.done():
                watch.cancel()
            elif not watch.cancelled() and watch.exception() is None:
                self._interest.unwatch(pattern)

    def _route(self, channel: str) -> list[Subscription]:
        route = self._routes.find(channel)
        if route is None:
            route = self._patterns.match(channel)
            if route:
                self._routes.add(channel, route)
        return route

    def _expire(self, sub: Subscription) -> None:
        sub.close(End.TOKEN_EXPIRED)

    # -- delivery ---------------------------------------------------------------------

    def deliver(self, events: list[Event]) -> None:
        """Broker listener: queue events for this loop turn's flush."""
        self._last = (self._epoch(), events[-1].seq)
        if not self._subs:
            return  # nobody is owed them; a subscription that starts later replays them
        runs = self._runs
        for event in events:
            if runs and runs[-1][0] == event.channel:
                runs[-1][1].append(event)
            else:
                runs.append((event.channel, [event]))
        if self._pending is None:
            loop = asyncio.get_running_loop()
            wait = self._next_flush - loop.time()
            self._pending = (
                loop.call_later(wait, self._flush) if wait > 0 else loop.call_soon(self._flush)
            )

    def flush(self) -> None:
        """Deliver what is queued now rather than when the flush is due (drain, resume)."""
        if self._pending is not None:
            self._pending.cancel()
            self._flush()

    def _flush(self) -> None:
        self._pending = None
        loop = asyncio.get_running_loop()
        began = loop.time()
        runs, self._runs = self._runs, []
        self._send(runs)
        ended = loop.time()
        self._next_flush = ended + max(self._flush_every, ended - began)

    def _send(self, runs: list[tuple[str, list[Event]]]) -> None:
        epoch = self._epoch().encode()
        dirty: list[Subscription] = []
        for channel, events in runs:
            route = self._route(channel)
            if not route:
                continue
            chunk_for = _RunChunks(epoch, events)
            for sub in route:
                if events[0].seq <= sub.after:  # its replay had some (a late live copy)
                    fresh = [e for e in events if e.seq > sub.after]
                    if fresh and sub.offer(fresh, _RunChunks(epoch, fresh)):
                        dirty.append(sub)
                elif sub.offer(events, chunk_for):
                    dirty.append(sub)
            self.delivered += len(events) * len(route)
        for sub in dirty:
            sub.flush()

    # -- housekeeping -----------------------------------------------------------------

    def heartbeat(self) -> None:
        """Keep every stream open through idle proxies, and move its cursor on to the
        newest event handed over: everything before it has been offered to every live
        subscription, so a quiet stream that reconnects asks for nothing it has seen."""
        self.flush()
        epoch, seq = self._last
        frame = sse.ping(epoch.encode(), seq) if seq and epoch == self._epoch() else sse.PING
        for sub in list(self._subs):
            sub.heartbeat(frame)

    async def run_heartbeats(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.heartbeat()

    def close_all(self, reason: End) -> None:
        """End every stream for `reason`, telling each client why (drain, resync)."""
        for sub in list(self._subs):
            sub.close(reason)

    async def emptied(self, timeout: float) -> bool:
        """Wait until every subscription has been removed (its connection closed)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._empty.wait(), timeout)
        return self._empty.is_set()

    @property
    def subscriptions(self) -> int:
        return len(self._subs)

    def count_by_transport(self) -> Counter[str]:
        """Open subscriptions per transport ("sse", "grpc"); read by /metrics at scrape."""
        return Counter(sub.transport for sub in self._subs)

    def stats(self) -> dict[str, Any]:
        # Per channel or pattern subscribed: costs the subscriptions, not the channels held.
        per_channel = Counter(p.text for sub in self._subs for p in sub.patterns)
        return {
            "connections": len(self._subs),
            "owners": self.admission.owners,
            "subscribers_per_channel": dict(per_channel),
            "deliveries": self.delivered,
        }


class _RunChunks:
    """The SSE bytes of one run, encoded once per severity floor that a subscriber uses."""

    __slots__ = ("_cache", "_epoch", "_events")

    def __init__(self, epoch: bytes, events: list[Event]) -> None:
        self._epoch = epoch
        self._events = events
        self._cache: dict[int, bytes] = {}

    def __call__(self, floor: int) -> bytes:
        chunk = self._cache.get(floor)
        if chunk is None:
            chunk = self._cache[floor] = sse.log_frames(self._epoch, self._events, floor)
        return chunk
