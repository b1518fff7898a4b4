"""The shared broker: channel history in Redis, so several gateway instances act as one.

Every append is one Lua script (see broker_redis_lua): it takes seqs from one counter, adds
the events to their channels' streams and ledgers, trims them, sets their TTLs, updates
the channel registry (forgetting stale names), adds the batch to the feed and keeps the
de-duplication window, all or nothing, and Redis has confirmed it before `append` returns.
Every key a channel or producer uses expires with what it holds, so Redis holds what is
retained, not what was ever used (docs/SCALING.md, "What Redis holds, and when it goes").

Delivery: each instance runs ONE read loop that follows the feed with a blocking XREAD and
hands each batch to the listeners in seq order, its own appends included (nothing is handed
over at append time, so nothing twice). Patterns need nothing per channel in Redis: the hub
matches them.

Reads: an index of channel names by segment (ChannelIndex, each with its last seq), fed by
appends and the feed, loaded from the registry at start and after a resync, and pruned by
age, gives the channels a pattern matches that had an append after the cursor; READ finds
where each goes on and what it lost, READ_PAGE channels per script, and redis_reads then
pages through them, so a resume over 100,000 channels or 100 MB is many short commands,
each one sent when the stream has taken the page before.

When Redis goes away, appends fail at once with UNAVAILABLE (nothing stored; one whose
answer is lost or late fails with OUTCOME_UNKNOWN instead, see `store`), open streams keep
their heartbeats, and the read loop retries and then resumes from its last feed id. Where it
cannot go on without a hole (the feed was trimmed past it, or Redis lost its data: a new
epoch) it skips to the present and calls the resync callbacks: the gateway then ends its
live streams, and clients resume from their cursors through history, with `event: gap`
only where history itself is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

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
    place_gaps,
)
from gateway.core.broker_redis_errors import refused, store, unavailable
from gateway.core.channels import Pattern
from gateway.core.cursor import Cursor
from gateway.core.discovery import ChannelInfo, newest_first
from gateway.core.errors import GatewayError
from gateway.core.events import Entry, Event, encode_data
from gateway.core.index import ChannelIndex
from gateway.core.redis_page_lua import PAGE

log = logging.getLogger("logs_gateway.redis")
T = TypeVar("T")

# Feed entries (appended batches) kept for an instance that falls behind or is cut off
# briefly; past that it resyncs its subscribers through history. Bounds Redis memory too.
FEED_MAX = 10_000
PRUNE_MAX = 1_000  # most stale channel names one script forgets (the next one goes on)
READ_PAGE = 256  # channels read by one script of a replay, each page awaited in turn
LOAD_PAGE = 1_000  # registry entries asked for per HSCAN when loading the channel index
KEEP_MARGIN = 1.0  # seconds a name outlives its Redis record here (clock skew, feed delay)
BLOCK_MS = 5_000  # longest wait of one feed read
READ_COUNT = 512  # most feed entries taken per read
POOL_SIZE = 32  # connections for appends and replays
LAST_MS = 2**64 - 1  # the highest second part of a stream id: "every entry of this seq"
RETRY_DELAYS = (0.05, 2.0)  # first and longest pause between reconnects of the read loop
_OFFSET = b'"offset":'


class RedisBroker:
    """Broker protocol over Redis Streams, shared by every instance using the same Redis."""

    def __init__(
        self,
        url: str,
        *,
        max_entries: int,
        max_age: float,
        dedup_seconds: float,
        dedup_batches: int,
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
        self._feed_redis = Redis.from_url(url, socket_timeout=timeout + BLOCK_MS / 1000, **options)
        self._append_script = self._redis.register_script(lua.APPEND)
        self._read_script = self._redis.register_script(lua.READ)
        self._page_script = self._redis.register_script(PAGE)
        self._horizon_script = self._redis.register_script(lua.HORIZON)
        self._position_script = self._redis.register_script(lua.POSITION)
        self._keys = _Keys(prefix)
        life = (broker.GAP_MEMORY + 1) * max_age  # how long a channel's record outlives it
        self._trim = [max_entries, int(max_age * 1000)]  # READ's limits
        self._life_ms = int(life * 1000)
        self._ledger_max = 2 * max_entries
        self._feed_max = feed_max
        self._feed_max_bytes = feed_max_bytes
        self._dedup_ms = int(dedup_seconds * 1000)
        self._dedup_batches = dedup_batches
        self._timeout = timeout
        self._epoch = ""
        self._delivered = 0  # seq of the last event handed to the listeners (in this epoch)
        self._feed_id: bytes | str = "0-0"  # the last feed entry read
        self._max_age = max_age
        self._keep = life + KEEP_MARGIN
        self._index: ChannelIndex[_Channel] = ChannelIndex()  # names with a record in Redis
        self._known: OrderedDict[str, _Channel] = OrderedDict()  # the same, oldest first
        self._holding: OrderedDict[str, _Channel] = OrderedDict()  # appended within max_age
        self._stale = True  # whether the index may lack channels (load them from Redis)
        self._listeners: list[Listener] = []
        self._resync: list[Callable[[], None]] = []
        self._positioned = asyncio.Event()
        self._progress = asyncio.Event()
        self._failing = False
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def epoch(self) -> str:
        return self._epoch

    # -- Broker -------------------------------------------------------------------------

    async def append(self, entries: Sequence[Entry], key: DedupKey | None) -> Appended:
        """Returns after Redis stored the batch; a key seen before (by any instance) returns
        the first result's offsets and seqs again (duplicate=True) and stores nothing."""
        await self._started()
        parts = [_split(encode_data(entry, 0)) for entry in entries]
        keys, args = self._append_input(entries, parts, key)
        epoch, duplicate, result = await store(self._redis, self._append_script, keys, args)
        first, *offsets = map(int, result.split())
        if not duplicate:
            self._note((entry.channel, first + i) for i, entry in enumerate(entries))
        if epoch.decode() != self._epoch:
            self._skip_to(epoch.decode(), first - 1)
        # A duplicate's events are rebuilt from the batch resent, which is the same batch.
        stored = zip(entries, offsets, parts, strict=not duplicate)
        events = [
            Event(entry.channel, offset, first + i, entry.severity, b"%b%d%b" % (h, offset, t))
            for i, (entry, offset, (h, t)) in enumerate(stored)
        ]
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
            return await self._snapshot()
        except GatewayError:
            if not self._positioned.is_set():
                raise
            return self._delivered

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
        upto = await self._snapshot()
        reset = after.epoch != self._epoch
        since = 0 if reset else after.seq
        matched = await self._matching(patterns, since)
        channels, losses = await self._starts(matched, len(patterns), since, upto)
        # Read after the channels, so no channel forgotten meanwhile escapes both; never
        # past the snapshot (appends after it are not this read's).
        forgotten = min(int(await self._call(self._horizon())), upto)
        for loss in losses:
            loss.exact = loss.exact and since >= forgotten
        first, held = True, list[Gap]()
        reading = self._reading(size, min_severity)
        async for page, lost in redis_reads.forward(reading, channels, since, upto, losses):
            if reset:
                lost = [Loss(exact=True) for _ in patterns] if first else []
            if lost:
                held += Loss.gaps(patterns, lost, reset and first, forgotten)
            held = place_gaps(held, page)
            first = False
            yield page

    async def read_before(
        self,
        patterns: Sequence[Pattern],
        before: int | None,
        size: PageSize = broker.PAGE,
        min_severity: int = 0,
    ) -> AsyncGenerator[Page, None]:
        """Pages back from `before` through the matching channels that still hold
        history, newest first (redis_reads)."""
        upto = await self._snapshot()
        start = upto + 1 if before is None else min(before, upto + 1)
        retained = time.monotonic() - self._max_age
        channels = redis_reads.Channels()
        for i, channel in await self._matching(patterns, -1):
            if channel.at >= retained:
                channels.add(channel.name, i, -min(channel.last, start - 1))
        reading = self._reading(size, min_severity)
        async for page in redis_reads.backward(reading, channels, start):
            yield page

    async def _matching(
        self, patterns: Sequence[Pattern], since: int
    ) -> list[tuple[int, _Channel]]:
        """The channels matching `patterns` touched after `since`, each once, under the
        first pattern matching it (the loop gets a turn every LOAD_PAGE of them)."""
        if self._stale:
            await self._load_index()
        self._prune(time.monotonic())
        matched: dict[str, tuple[int, _Channel]] = {}
        for i, pattern in enumerate(patterns):
            for channel in self._index.match(pattern, since):
                if channel.last > since and channel.name not in matched:
                    matched[channel.name] = (i, channel)
                    if len(matched) % LOAD_PAGE == 0:
                        await asyncio.sleep(0)
        return list(matched.values())

    async def lost(self, patterns: Sequence[Pattern]) -> list[Gap]:
        """READ from seq 0 over the matching channels: it counts what each lost."""
        upto = await self._snapshot()
        matched = await self._matching(patterns, 0)
        _, losses = await self._starts(matched, len(patterns), 0, upto)
        forgotten = min(int(await self._call(self._horizon())), upto)
        for loss in losses:
            loss.exact = loss.exact and not forgotten
        return Loss.gaps(patterns, losses, False, forgotten)

    async def channels(
        self, patterns: Sequence[Pattern], before: int | None, limit: int
    ) -> list[ChannelInfo]:
        """From this instance's index of the channels appended to within max_age; each one
        listed costs an XLEN and its newest entry's id (seq-ms: when Redis stored it)."""
        if self._stale:
            await self._load_index()
        self._prune(time.monotonic())
        holding = self._holding
        matched = {
            c.name: c
            for p in patterns
            for _, c in self._index.newest(p, before, limit, lambda c: c.name in holding)
        }
        page = newest_first(matched.values(), lambda c: c.last, before, limit)
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel in page:
                pipe.xlen(self._keys.history(channel.name))
                pipe.xrevrange(self._keys.history(channel.name), "+", "-", count=1)
            replies = await self._call(pipe.execute())
        found = []
        for channel, count, newest in zip(page, replies[::2], replies[1::2], strict=True):
            if count and newest:
                seq, ms = newest[0][0].split(b"-")
                found.append(ChannelInfo(channel.name, count, int(seq), int(ms) / 1000))
        return found

    async def _starts(
        self, matched: list[tuple[int, _Channel]], npatterns: int, since: int, upto: int
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
            replies = await self._call(self._read_script(keys, [since, upto, *self._trim, *page]))
            for (i, channel), reply in zip(matched[start:], replies, strict=False):
                lost, newest, exact, first, offset = (int(x) for x in reply.split())
                losses[i].add(lost, newest, bool(exact))
                if first:
                    channels.add(channel.name, i, first, offset)
        return channels, losses

    def _reading(self, size: PageSize, floor: int) -> redis_reads.Reading:
        async def run(keys: list[str], args: list[int]) -> bytes:
            reply: bytes = await self._call(self._page_script(keys, args))
            return reply

        return redis_reads.Reading(run, self._keys.history, size, floor, self._trim[1])

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)
        with contextlib.suppress(RuntimeError):  # no running loop yet: starts on first use
            self._start_reader()

    async def watch(self, pattern: Pattern) -> None:
        """Nothing to do: the one feed read loop brings every instance every event (the
        feed is what Redis offers; docs/SCALING.md says what that costs)."""

    def unwatch(self, pattern: Pattern) -> None:
        """Nothing to do (see watch)."""

    async def ready(self) -> bool:
        """Whether Redis answers and the read loop follows the feed."""
        try:
            await self._started()
            return not self._failing and bool(await self._redis.ping())
        except (GatewayError, RedisError):
            return False

    def usage(self) -> Usage:
        """Channels appended to within max age (by any instance, as the feed tells); what
        they hold is bounded by Redis's maxmemory, not counted here."""
        self._prune(time.monotonic())
        return Usage(len(self._holding))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._listeners.clear()
        if self._reader is not None:
            # Python 3.11's wait_for (inside redis-py) can swallow a cancel that lands just
            # as its inner await completes: cancel until the task has stopped.
            while not self._reader.done():
                self._reader.cancel()
                await asyncio.wait({self._reader}, timeout=0.1)
        await self._redis.aclose(close_connection_pool=True)
        await self._feed_redis.aclose()

    # -- broker.Resyncing ---------------------------------------------------------------

    def on_resync(self, callback: Callable[[], None]) -> None:
        """Skips happen when the feed was trimmed past this instance, or Redis lost its data."""
        self._resync.append(callback)

    # -- helpers ------------------------------------------------------------------------

    async def _call(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except ResponseError as e:
            raise refused(e) from None
        except RedisError:
            raise unavailable() from None

    async def _started(self) -> None:
        """Wait until the read loop knows where it starts, so no append escapes it."""
        self._start_reader()
        if not self._positioned.is_set():
            try:
                await asyncio.wait_for(self._positioned.wait(), self._timeout)
            except TimeoutError:
                raise unavailable() from None

    async def _snapshot(self) -> int:
        """The newest seq in Redis, once the listeners were given every event up to it:
        a subscriber that starts there then gets each later event live, none twice."""
        await self._started()
        k = self._keys
        position = self._position_script([k.epoch, k.seq, k.feed], [secrets.token_hex(4)])
        epoch, seq, _ = await self._call(position)
        if epoch.decode() != self._epoch:
            self._skip_to(epoch.decode(), int(seq))
        await self._caught_up(int(seq))
        return int(seq)

    async def _caught_up(self, seq: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while self._delivered < seq:
            try:
                await asyncio.wait_for(self._progress.wait(), deadline - loop.time())
            except TimeoutError:
                raise unavailable() from None

    def _horizon(self) -> Awaitable[Any]:
        """The forgotten horizon (HORIZON), forgetting what is due first."""
        k = self._keys
        keys = [k.channels, k.last, k.forgotten, k.seq]
        return self._horizon_script(keys, [self._life_ms, PRUNE_MAX])

    async def _load_index(self) -> None:
        """Add the registry's channels to the index, LOAD_PAGE at a time (HSCAN returns
        every entry present throughout; later ones come by the feed)."""
        self._stale = False
        try:
            now, wall = time.monotonic(), time.time()
            found = []
            async for name, value in self._redis.hscan_iter(self._keys.last, count=LOAD_PAGE):
                last, ms = value.split()
                found.append((now - (wall - int(ms) / 1000), name.decode(), int(last)))
        except RedisError:
            self._stale = True
            raise unavailable() from None
        found.sort()
        for at, name, last in found:
            self._put(name, last, at)
        # The registry's names are older than most already held: keep both oldest first.
        for ordered in (self._known, self._holding):
            items = sorted(ordered.values(), key=lambda c: c.at)
            ordered.clear()
            ordered.update((c.name, c) for c in items)
        self._prune(now)

    def _note(self, appended: Iterable[tuple[str, int]]) -> None:
        """Channels appended to just now, with the seqs they got (in seq order)."""
        now = time.monotonic()
        for name, seq in dict(appended).items():
            self._put(name, seq, now)
        self._prune(now)

    def _put(self, name: str, last: int, at: float) -> None:
        channel = self._known.get(name)
        if channel is None:
            channel = self._known[name] = _Channel(name, last, at)
            self._index.put(name, channel, last)
        elif channel.at <= at:
            channel.last, channel.at = max(channel.last, last), at
            self._index.put(name, channel, channel.last)
            self._known.move_to_end(name)
        else:
            return
        self._holding[name] = channel
        self._holding.move_to_end(name)

    def _prune(self, now: float) -> None:
        """Let go of names past max age (holding) and past their Redis record (known)."""
        for ordered, cutoff in ((self._holding, self._max_age), (self._known, self._keep)):
            while ordered:
                channel = next(iter(ordered.values()))
                if channel.at >= now - cutoff:
                    break
                del ordered[channel.name]
                if ordered is self._known:
                    self._index.pop(channel.name)

    # -- the read loop ------------------------------------------------------------------

    def _start_reader(self) -> None:
        if self._reader is None and not self._closed:
            self._reader = asyncio.get_running_loop().create_task(self._read_feed())

    async def _read_feed(self) -> None:
        """Follow the feed for as long as the broker is open, reconnecting with backoff."""
        delay = RETRY_DELAYS[0]
        while not self._closed:
            try:
                await self._position()
                delay = RETRY_DELAYS[0]
                while True:
                    if self._stale:
                        await self._load_index()
                    reply = await self._feed_redis.xread(
                        {self._keys.feed: self._feed_id}, count=READ_COUNT, block=BLOCK_MS
                    )
                    self._consume(reply)
            except (RedisError, GatewayError) as e:
                if not self._failing:
                    log.warning("redis unavailable; retrying", extra={"error": type(e).__name__})
                self._failing = True
            except Exception:
                log.exception("feed read loop failed; restarting it")
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_DELAYS[1])

    async def _position(self) -> None:
        """Where to read from: first the feed's end; after an outage, on from the last
        entry read, unless Redis lost its data meanwhile (a new epoch)."""
        k = self._keys
        position = self._position_script([k.epoch, k.seq, k.feed], [secrets.token_hex(4)])
        epoch, seq, last_id = await position
        if self._failing:
            log.warning("redis reachable again")
            self._failing = False
        if not self._epoch:
            self._epoch, self._delivered, self._feed_id = epoch.decode(), int(seq), last_id
            self._positioned.set()
            await self._check_durability()
        elif epoch.decode() != self._epoch:
            self._skip_to(epoch.decode(), int(seq))
            self._feed_id = last_id

    async def _check_durability(self) -> None:
        """Say at start when an ack will not survive a Redis restart (docs/SCALING.md,
        "Durability"): an ack is as durable as Redis's persistence."""
        try:
            config = await self._redis.config_get("appendonly")
            config |= await self._redis.config_get("save")
        except ResponseError:  # CONFIG is often disabled on managed Redis: nothing to say
            return
        if config.get("appendonly") != "yes" and not config.get("save"):
            log.warning(
                "redis keeps nothing on disk (appendonly no, save ''): acknowledged entries "
                "are lost if Redis restarts; set appendonly yes (docs/SCALING.md, Durability)"
            )
        elif config.get("appendonly") != "yes":
            log.warning(
                "redis persists by snapshots only (appendonly no): a restart loses the "
                "entries acknowledged since the last snapshot (docs/SCALING.md, Durability)"
            )

    def _consume(self, reply: Any) -> None:
        for _stream, entries in reply or ():
            for feed_id, fields in entries:
                self._feed_id = feed_id
                events = self._accept(fields)
                if events:
                    for listener in self._listeners:
                        listener(events)
        self._progress.set()
        self._progress = asyncio.Event()

    def _accept(self, fields: dict[bytes, bytes]) -> list[Event]:
        """The events of one feed entry that the listeners have not had yet."""
        epoch, first = fields[b"p"].decode(), int(fields[b"s"])
        if epoch != self._epoch:
            self._skip_to(epoch, first - 1)
        elif first <= self._delivered:
            return []  # delivered already (the entry was read before a skip)
        elif first > self._delivered + 1:
            log.warning("feed trimmed past this instance", extra={"missed": first - 1})
            self._skip_to(epoch, first - 1)
        events = _feed_events(first, fields[b"e"])
        self._note((e.channel, e.seq) for e in events)
        self._delivered = events[-1].seq
        return events

    def _skip_to(self, epoch: str, seq: int) -> None:
        """Live delivery cannot go on without a hole: go on after `seq`, and tell the
        resync callbacks so live subscribers resume from history instead."""
        if epoch != self._epoch:
            log.warning("redis history reset (new epoch)", extra={"epoch": epoch})
            # The old names are gone with their history; the registry has the new ones.
            self._index, self._known, self._holding = ChannelIndex(), OrderedDict(), OrderedDict()
        self._epoch, self._delivered, self._stale = epoch, seq, True
        for callback in self._resync:
            callback()


class _Channel:
    """A channel this instance knows of: its newest seq, and when it was last appended to
    (monotonic seconds)."""

    __slots__ = ("at", "last", "name")

    def __init__(self, name: str, last: int, at: float) -> None:
        self.name, self.last, self.at = name, last, at


class _Keys:
    """The Redis key names (see broker_redis_lua for what each holds)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.epoch = f"{prefix}:epoch"
        self.seq = f"{prefix}:seq"
        self.feed = f"{prefix}:feed"
        self.forgotten = f"{prefix}:forgotten"
        self.channels = f"{prefix}:channels"
        self.last = f"{prefix}:last"

    def history(self, channel: str) -> str:
        return f"{self.prefix}:h:{channel}"

    def ledger(self, channel: str) -> str:
        return f"{self.prefix}:s:{channel}"

    def dedup(self, producer: str) -> str:
        return f"{self.prefix}:d:{producer}"

    def window(self, producer: str) -> str:
        return f"{self.prefix}:w:{producer}"


def _split(data: bytes) -> tuple[bytes, bytes]:
    """An event's JSON line (encoded with offset 0) cut around its offset, so the script
    can put in the offset it assigns and every reader gets the same bytes as make_event."""
    at = data.index(_OFFSET) + len(_OFFSET)
    return data[:at], data[at + 1 :]


def _feed_events(first: int, lines: bytes) -> list[Event]:
    events = []
    for i, line in enumerate(lines.split(b"\n")):
        channel, offset, severity, data = line.split(b" ", 3)
        events.append(Event(channel.decode(), int(offset), first + i, int(severity), data))
    return events
