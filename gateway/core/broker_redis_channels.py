"""The channels a Redis broker instance knows of, so a read finds what a pattern matches
without asking Redis for every channel.

An index of channel names by segment (ChannelIndex, each with its newest seq and when it
was last appended to), fed by this instance's appends and by the feed, loaded from the
registry (`P:last`) at start and after a resync, and pruned by age: a name goes once its
record in Redis has expired, so what this holds follows what Redis retains.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.core.broker_redis_errors import unavailable
from gateway.core.channels import Pattern
from gateway.core.events import Event
from gateway.core.index import ChannelIndex

LOAD_PAGE = 1_000  # registry entries asked for per HSCAN, and names matched per loop turn


class Channel:
    """A channel this instance knows of: its newest seq, when it was last appended to
    (monotonic seconds), and the seq its current life began with (its offset 0; 0 when
    this instance did not see it): it holds nothing older."""

    __slots__ = ("at", "first", "last", "name")

    def __init__(self, name: str, last: int, at: float, first: int = 0) -> None:
        self.name, self.last, self.at, self.first = name, last, at, first


class KnownChannels:
    """Every channel with a record in Redis (`known`, kept for `keep` seconds after its
    last append) and those still holding entries (`holding`, appended to within
    `max_age`), each oldest first; `stale` while the index may lack some (load them)."""

    def __init__(self, redis: Redis, registry: str, max_age: float, keep: float) -> None:
        self._redis = redis
        self._registry = registry
        self._max_age = max_age
        self._keep = keep
        self.index: ChannelIndex[Channel] = ChannelIndex()
        self._known: OrderedDict[str, Channel] = OrderedDict()
        self.holding: OrderedDict[str, Channel] = OrderedDict()
        self.stale = True

    async def fresh(self) -> None:
        """Load the registry if the index may lack channels, and let go of stale names."""
        if self.stale:
            await self._load()
        self.prune(time.monotonic())

    async def matching(self, patterns: Sequence[Pattern], since: int) -> list[tuple[int, Channel]]:
        """The channels matching `patterns` touched after `since`, each once, under the
        first pattern matching it (the loop gets a turn every LOAD_PAGE of them)."""
        await self.fresh()
        matched: dict[str, tuple[int, Channel]] = {}
        for i, pattern in enumerate(patterns):
            for channel in self.index.match(pattern, since):
                if channel.last > since and channel.name not in matched:
                    matched[channel.name] = (i, channel)
                    if len(matched) % LOAD_PAGE == 0:
                        await asyncio.sleep(0)
        return list(matched.values())

    def newest_first(self, patterns: Sequence[Pattern]) -> Iterator[tuple[int, Channel]]:
        """The channels matching `patterns` that may still hold entries (appended to within
        max age), each once, as (a seq at or above its newest entry when this began, the
        channel), newest first, lazily: a read back that stops after k channels costs
        about k (ChannelIndex.newest_first), not every channel matched."""
        retained = time.monotonic() - self._max_age
        walks = [self.index.newest_first(p) for p in patterns]
        seen = set[str]()
        for seq, channel in heapq.merge(*walks, key=lambda found: found[0], reverse=True):
            if channel.at >= retained and channel.name not in seen:
                if len(walks) > 1:
                    seen.add(channel.name)
                yield seq, channel

    def note(self, events: Iterable[Event]) -> None:
        """Events just stored (in seq order): their channels were appended to."""
        now = time.monotonic()
        began: dict[str, int] = {}
        last: dict[str, int] = {}
        for event in events:
            if event.offset == 0:  # a life begins: the ledger was gone, and history with it
                began[event.channel] = event.seq
            last[event.channel] = event.seq
        for name, seq in last.items():
            self._put(name, seq, now, began.get(name, 0))
        self.prune(now)

    def forget_all(self) -> None:
        """Redis lost its data (a new epoch): the old names are gone with their history;
        the registry has the new ones."""
        self.index, self._known, self.holding = ChannelIndex(), OrderedDict(), OrderedDict()
        self.stale = True

    def prune(self, now: float) -> None:
        """Let go of names past max age (holding) and past their Redis record (known)."""
        for ordered, cutoff in ((self.holding, self._max_age), (self._known, self._keep)):
            while ordered:
                channel = next(iter(ordered.values()))
                if channel.at >= now - cutoff:
                    break
                del ordered[channel.name]
                if ordered is self._known:
                    self.index.pop(channel.name)

    async def _load(self) -> None:
        """Add the registry's channels to the index, LOAD_PAGE at a time (HSCAN returns
        every entry present throughout; later ones come by the feed)."""
        self.stale = False
        try:
            now, wall = time.monotonic(), time.time()
            found = []
            async for name, value in self._redis.hscan_iter(self._registry, count=LOAD_PAGE):
                last, ms = value.split()
                found.append((now - (wall - int(ms) / 1000), name.decode(), int(last)))
        except RedisError:
            self.stale = True
            raise unavailable() from None
        found.sort(key=lambda f: f[2])  # in seq order: the index keeps its order
        for at, name, last in found:
            self._put(name, last, at)
        # The registry's names are older than most already held: keep both oldest first.
        for ordered in (self._known, self.holding):
            items = sorted(ordered.values(), key=lambda c: c.at)
            ordered.clear()
            ordered.update((c.name, c) for c in items)
        self.prune(now)

    def _put(self, name: str, last: int, at: float, first: int = 0) -> None:
        channel = self._known.get(name)
        if channel is None:
            channel = self._known[name] = Channel(name, last, at, first)
            self.index.put(name, channel, last)
        elif channel.at <= at:
            channel.at = at
            channel.first = first or channel.first
            if last > channel.last:  # (the feed brings back this instance's own appends)
                channel.last = last
                self.index.put(name, channel, last)
            self._known.move_to_end(name)
        else:
            return
        self.holding[name] = channel
        self.holding.move_to_end(name)
