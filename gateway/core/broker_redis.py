"""The shared broker: channel history in Redis, so several gateway instances act as one.

Every append is one Lua script (see broker_redis_lua): it takes seqs from one counter, adds
the events to their channels' streams and ledgers, trims them, sets their TTLs, updates
the channel registry (forgetting stale names), adds the batch to the feed and keeps the
de-duplication window, all or nothing, and Redis has confirmed it before `append` returns.
Every key a channel or producer uses expires with what it holds, so Redis holds what is
retained, not what was ever used (docs/SCALING.md, "What Redis holds, and when it goes").

Delivery: each instance runs ONE read loop that follows the feed (broker_redis_feed) and
hands every batch to the listeners, its own appends included.

Reads: the channels this instance knows of (broker_redis_channels) give those a pattern
matches that had an append after the cursor; READ finds where each goes on and what it
lost, READ_PAGE channels per script, and redis_reads then pages through them, so a resume
over 100,000 channels or 100 MB is many short commands, each one sent when the stream has
taken the page before.

When Redis goes away, appends fail at once with UNAVAILABLE (nothing stored; one whose
answer is lost or late fails with OUTCOME_UNKNOWN instead, see `store`), open streams keep
their heartbeats, and the read loop retries and resumes (or resyncs: broker_redis_feed).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.core import broker, redis_reads
from gateway.core import broker_redis_lua as lua
from gateway.core.broker import (
    Appended,
    DedupKey,
    Gap,
    Listener,
    Loss,
    Page,
    PageSize,
    Usage,
    with_gaps,
)
from gateway.core.broker_redis_channels import Channel, KnownChannels
from gateway.core.broker_redis_errors import call, store
from gateway.core.broker_redis_feed import BLOCK_MS, Feed
from gateway.core.channels import Pattern
from gateway.core.cursor import Cursor
from gateway.core.discovery import ChannelInfo, newest_first
from gateway.core.errors import GatewayError
from gateway.core.events import Entry, Event, encode_data
from gateway.core.redis_page_lua import PAGE

# Feed entries (appended batches) kept for an instance that falls behind or is cut off
# briefly; past that it resyncs its subscribers through history. Bounds Redis memory too.
FEED_MAX = 10_000
PRUNE_MAX = 1_000  # most stale channel names one script forgets (the next one goes on)
READ_PAGE = 256  # channels read by one script of a replay, each page awaited in turn
KEEP_MARGIN = 1.0  # seconds a name outlives its Redis record here (clock skew, feed delay)
POOL_SIZE = 32  # connections for appends and replays
_OFFSET = b'"offset":'


class RedisBroker:
    """Broker protocol over Redis Streams, shared by every instance using the same Redis."""

    def __init__(
        self,
        url: str,
        limits: broker.Limits,
        *,
        feed_max_bytes: int,  # of the feed's event lines (entries are bounded too)
        prefix: str = "logs-gateway",
        timeout: float = 2.0,
        feed_max: int = FEED_MAX,
    ) -> None:
        # No automatic retries: an append must fail fast (the publisher resends, and the
        # de-duplication key makes that safe), never run twice behind our back.
        options: dict[str, Any] = {
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),
        }
        # Redis runs one script at a time, so more connections would only queue there:
        # callers beyond the pool wait (up to `timeout`) for a free one instead.
        pool = BlockingConnectionPool.from_url(
            url, max_connections=POOL_SIZE, timeout=timeout, socket_timeout=timeout, **options
        )
        self._redis = Redis(connection_pool=pool)
        self._append_script = self._redis.register_script(lua.APPEND)
        self._read_script = self._redis.register_script(lua.READ)
        self._page_script = self._redis.register_script(PAGE)
        self._horizon_script = self._redis.register_script(lua.HORIZON)
        self._keys = lua.Keys(prefix)
        max_age = limits.max_age
        life = (broker.GAP_MEMORY + 1) * max_age  # how long a channel's record outlives it
        self._known = KnownChannels(self._redis, self._keys.last, max_age, life + KEEP_MARGIN)
        reader = Redis.from_url(url, socket_timeout=timeout + BLOCK_MS / 1000, **options)
        self._feed = Feed(self._redis, reader, self._keys, self._known, timeout)
        self._trim = [limits.max_entries, int(max_age * 1000)]  # READ's limits
        self._life_ms = int(life * 1000)
        self._ledger_max = 2 * limits.max_entries
        self._feed_max = feed_max
        self._feed_max_bytes = feed_max_bytes
        self._dedup_ms = int(limits.dedup_seconds * 1000)
        self._dedup_batches = limits.dedup_batches
        self._max_age = max_age
        self._closed = False

    @property
    def epoch(self) -> str:
        return self._feed.epoch

    # -- Broker -------------------------------------------------------------------------

    async def append(self, entries: Sequence[Entry], key: DedupKey | None) -> Appended:
        """Returns after Redis stored the batch; a key seen before (by any instance) returns
        the first result's offsets and seqs again (duplicate=True) and stores nothing."""
        await self._feed.started()
        parts = [_split(encode_data(entry, 0)) for entry in entries]
        keys, args = self._append_input(entries, parts, key)
        epoch, duplicate, result = await store(self._redis, self._append_script, keys, args)
        first, *offsets = map(int, result.split())
        if epoch.decode() != self._feed.epoch:
            self._feed.skip_to(epoch.decode(), first - 1)
        # A duplicate's events are rebuilt from the batch resent, which is the same batch.
        stored = zip(entries, offsets, parts, strict=not duplicate)
        events = [
            Event(entry.channel, offset, first + i, entry.severity, b"%b%d%b" % (h, offset, t))
            for i, (entry, offset, (h, t)) in enumerate(stored)
        ]
        if not duplicate:
            self._known.note(events)
        return Appended(events, duplicate=bool(duplicate))

    def _append_input(
        self, entries: Sequence[Entry], parts: list[tuple[bytes, bytes]], key: DedupKey | None
    ) -> tuple[list[str], list[str | int | bytes]]:
        """KEYS and ARGV of the APPEND script (their layout is documented beside it)."""
        counts = Counter(entry.channel for entry in entries)
        number = {name: i for i, name in enumerate(counts, 1)}
        k = self._keys
        producer, sequence = key if key is not None else ("", 0)
        keys = [k.epoch, k.seq, k.feed, k.channels, k.last, k.forgotten]
        keys += [k.dedup(producer), k.window(producer)]
        for name in counts:
            keys += [k.history(name), k.ledger(name)]
        max_entries, max_age_ms = self._trim
        args: list[str | int | bytes] = [secrets.token_hex(4), max_entries, max_age_ms]
        args += [self._life_ms, self._ledger_max, PRUNE_MAX, self._feed_max]
        args += [int(key is not None), self._dedup_ms, self._dedup_batches, sequence]
        args += [len(entries), len(counts), *(x for pair in counts.items() for x in pair)]
        # One argument for the whole batch: packing arguments is most of a client's cost.
        lines = (
            b"%d %d %d %b%b" % (number[entry.channel], entry.severity, len(head), head, tail)
            for entry, (head, tail) in zip(entries, parts, strict=True)
        )
        return keys, [*args, b"\n".join(lines), self._feed_max_bytes]

    async def head(self) -> int:
        """Redis's newest seq; while Redis is unreachable, the newest this instance
        delivered, so a live-only stream can still start (later events follow it)."""
        try:
            return await self._feed.snapshot()
        except GatewayError:
            if not self._feed.positioned:
                raise
            return self._feed.delivered

    async def read_after(
        self,
        patterns: Sequence[Pattern],
        after: Cursor,
        size: PageSize = broker.PAGE,
        min_severity: int = 0,
    ) -> AsyncGenerator[Page, None]:
        """Finds where each matching channel touched after the cursor goes on (READ,
        READ_PAGE channels a call, which also counts what each lost), then pages through
        them (redis_reads)."""
        upto = await self._feed.snapshot()
        reset = after.epoch != self._feed.epoch
        since = 0 if reset else after.seq
        matched = await self._known.matching(patterns, since)
        channels, losses = await self._starts(matched, len(patterns), since, upto)
        # Read after the channels, so no channel forgotten meanwhile escapes both; never
        # past the snapshot (appends after it are not this read's).
        forgotten = min(int(await call(self._horizon())), upto)
        reading = self._reading(size, min_severity)
        pages = redis_reads.forward(reading, channels, since, upto, losses)
        async for page in with_gaps(pages, patterns, reset, since, forgotten):
            yield page

    async def read_before(
        self,
        patterns: Sequence[Pattern],
        before: int | None,
        size: PageSize = broker.PAGE,
        min_severity: int = 0,
    ) -> AsyncGenerator[Page, None]:
        """Pages back from `before` through the matching channels that still hold
        history, taking them newest first as the pages reach them (redis_reads)."""
        upto = await self._feed.snapshot()
        start = upto + 1 if before is None else min(before, upto + 1)
        await self._known.fresh()
        found = (
            (channel.name, min(seq, start - 1), channel.first)
            for seq, channel in self._known.newest_first(patterns)
        )
        async for page in redis_reads.backward(self._reading(size, min_severity), found, start):
            yield page

    async def lost(self, patterns: Sequence[Pattern]) -> list[Gap]:
        """READ from seq 0 over the matching channels: it counts what each lost."""
        upto = await self._feed.snapshot()
        matched = await self._known.matching(patterns, 0)
        _, losses = await self._starts(matched, len(patterns), 0, upto)
        forgotten = min(int(await call(self._horizon())), upto)
        for loss in losses:
            loss.exact = loss.exact and not forgotten
        return Loss.gaps(patterns, losses, False, forgotten)

    async def channels(
        self, patterns: Sequence[Pattern], before: int | None, limit: int
    ) -> list[ChannelInfo]:
        """From this instance's index of the channels appended to within max_age; each one
        listed costs an XLEN and its newest entry's id (seq-ms: when Redis stored it)."""
        await self._known.fresh()
        holding = self._known.holding
        matched = {
            c.name: c
            for p in patterns
            for _, c in self._known.index.newest(p, before, limit, lambda c: c.name in holding)
        }
        page = newest_first(matched.values(), lambda c: c.last, before, limit)
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel in page:
                pipe.xlen(self._keys.history(channel.name))
                pipe.xrevrange(self._keys.history(channel.name), "+", "-", count=1)
            replies = await call(pipe.execute())
        found = []
        for channel, count, newest in zip(page, replies[::2], replies[1::2], strict=True):
            if count and newest:
                seq, ms = newest[0][0].split(b"-")
                found.append(ChannelInfo(channel.name, count, int(seq), int(ms) / 1000))
        return found

    async def _starts(
        self, matched: list[tuple[int, Channel]], npatterns: int, since: int, upto: int
    ) -> tuple[redis_reads.Channels, list[Loss]]:
        """Where each channel's entries after `since` start, and what each lost after it
        (READ, READ_PAGE channels a call: one call for every channel would hold Redis)."""
        k = self._keys
        channels, losses = redis_reads.Channels(), [Loss(exact=True) for _ in range(npatterns)]
        for start in range(0, len(matched), READ_PAGE):
            page = [channel.name for _, channel in matched[start : start + READ_PAGE]]
            keys = [k.last]
            for name in page:
                keys += [k.history(name), k.ledger(name)]
            replies = await call(self._read_script(keys, [since, upto, *self._trim, *page]))
            for (i, channel), reply in zip(matched[start:], replies, strict=False):
                lost, newest, exact, first, offset = (int(x) for x in reply.split())
                losses[i].add(lost, newest, bool(exact))
                if first:
                    channels.add(channel.name, i, first, offset)
        return channels, losses

    def _reading(self, size: PageSize, floor: int) -> redis_reads.Reading:
        async def run(keys: list[str], args: list[int]) -> bytes:
            reply: bytes = await call(self._page_script(keys, args))
            return reply

        return redis_reads.Reading(run, self._keys.history, size, floor, self._trim[1])

    def add_listener(self, listener: Listener) -> None:
        self._feed.add_listener(listener)
        with contextlib.suppress(RuntimeError):  # no running loop yet: starts on first use
            self._feed.start()

    async def watch(self, pattern: Pattern) -> None:
        """Nothing to do: the one feed read loop brings every instance every event (the
        feed is what Redis offers; docs/SCALING.md says what that costs)."""

    def unwatch(self, pattern: Pattern) -> None:
        """Nothing to do (see watch)."""

    async def ready(self) -> bool:
        """Whether Redis answers and the read loop follows the feed."""
        try:
            await self._feed.started()
            return not self._feed.failing and bool(await self._redis.ping())
        except (GatewayError, RedisError):
            return False

    def usage(self) -> Usage:
        """Channels appended to within max age (by any instance, as the feed tells); what
        they hold is bounded by Redis's maxmemory, not counted here."""
        self._known.prune(time.monotonic())
        return Usage(len(self._known.holding))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._feed.close()
        await self._redis.aclose(close_connection_pool=True)

    # -- broker.Resyncing ---------------------------------------------------------------

    def on_resync(self, callback: Callable[[], None]) -> None:
        """Skips happen when the feed was trimmed past this instance, or Redis lost its data."""
        self._feed.on_resync(callback)

    # -- helpers ------------------------------------------------------------------------

    def _horizon(self) -> Awaitable[Any]:
        """The forgotten horizon (HORIZON), forgetting what is due first."""
        k = self._keys
        keys = [k.channels, k.last, k.forgotten, k.seq]
        return self._horizon_script(keys, [self._life_ms, PRUNE_MAX])


def _split(data: bytes) -> tuple[bytes, bytes]:
    """An event's JSON line (encoded with offset 0) cut around its offset, so the script
    can put in the offset it assigns and every reader gets the same bytes as make_event."""
    at = data.index(_OFFSET) + len(_OFFSET)
    return data[:at], data[at + 1 :]
