"""The Redis broker's live delivery: one read loop per instance follows the feed `P:feed`.

The loop follows the feed with a blocking XREAD and hands each batch to the listeners in seq
order, this instance's own appends included (nothing is handed over at append time, so
nothing twice). Patterns need nothing per channel in Redis: the hub matches them.

When Redis goes away the loop retries with backoff and then resumes from its last feed id.
Where it cannot go on without a hole (the feed was trimmed past it, or Redis lost its data:
a new epoch) it skips to the present and calls the resync callbacks: the gateway then ends
its live streams, and clients resume from their cursors through history, with `event: gap`
only where history itself is gone.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from gateway.core import broker_redis_lua as lua
from gateway.core.broker import Listener
from gateway.core.broker_redis_channels import KnownChannels
from gateway.core.broker_redis_errors import call, unavailable
from gateway.core.errors import GatewayError
from gateway.core.events import Event

log = logging.getLogger("logs_gateway.redis")

BLOCK_MS = 5_000  # longest wait of one feed read
READ_COUNT = 512  # most feed entries taken per read
RETRY_DELAYS = (0.05, 2.0)  # first and longest pause between reconnects of the read loop


class Feed:
    """The read loop of one instance: where it is in the feed (`epoch`, `delivered`: the
    seq of the last event handed to the listeners) and who is told."""

    def __init__(
        self, redis: Redis, reader: Redis, keys: lua.Keys, known: KnownChannels, timeout: float
    ) -> None:
        """`redis` for short commands, `reader` (its own connection) for the blocking
        XREAD; `known` learns each event's channel."""
        self._redis, self._reader = redis, reader
        self._position_script = redis.register_script(lua.POSITION)
        self._keys, self._known, self._timeout = keys, known, timeout
        self.epoch = ""
        self.delivered = 0
        self.failing = False
        self._feed_id: bytes | str = "0-0"  # the last feed entry read
        self._positioned = asyncio.Event()
        self._progress = asyncio.Event()
        self._listeners: list[Listener] = []
        self._resync: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def positioned(self) -> bool:
        """Whether the loop has known once where it starts."""
        return self._positioned.is_set()

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def on_resync(self, callback: Callable[[], None]) -> None:
        self._resync.append(callback)

    def start(self) -> None:
        """Start the loop (on the running loop), once."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._follow())

    async def started(self) -> None:
        """Wait until the loop knows where it starts, so no append escapes it."""
        self.start()
        if not self._positioned.is_set():
            try:
                await asyncio.wait_for(self._positioned.wait(), self._timeout)
            except TimeoutError:
                raise unavailable() from None

    async def snapshot(self) -> int:
        """The newest seq in Redis, once the listeners were given every event up to it:
        a subscriber that starts there then gets each later event live, none twice."""
        await self.started()
        epoch, seq, _ = await call(self._position())
        if epoch.decode() != self.epoch:
            self.skip_to(epoch.decode(), int(seq))
        await self._caught_up(int(seq))
        return int(seq)

    def skip_to(self, epoch: str, seq: int) -> None:
        """Live delivery cannot go on without a hole: go on after `seq`, and tell the
        resync callbacks so live subscribers resume from history instead."""
        if epoch != self.epoch:
            log.warning("redis history reset (new epoch)", extra={"epoch": epoch})
            self._known.forget_all()
        self.epoch, self.delivered, self._known.stale = epoch, seq, True
        for callback in self._resync:
            callback()

    async def close(self) -> None:
        self._closed = True
        self._listeners.clear()
        if self._task is not None:
            # Python 3.11's wait_for (inside redis-py) can swallow a cancel that lands just
            # as its inner await completes: cancel until the task has stopped.
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=0.1)
        await self._reader.aclose()

    # -- the loop -----------------------------------------------------------------------

    def _position(self) -> Any:
        """POSITION: the epoch, the newest seq and the feed's last id, read together."""
        k = self._keys
        return self._position_script([k.epoch, k.seq, k.feed], [secrets.token_hex(4)])

    async def _caught_up(self, seq: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while self.delivered < seq:
            try:
                await asyncio.wait_for(self._progress.wait(), deadline - loop.time())
            except TimeoutError:
                raise unavailable() from None

    async def _follow(self) -> None:
        """Follow the feed for as long as the broker is open, reconnecting with backoff."""
        delay = RETRY_DELAYS[0]
        while not self._closed:
            try:
                await self._place()
                delay = RETRY_DELAYS[0]
                while True:
                    if self._known.stale:
                        await self._known.fresh()
                    reply = await self._reader.xread(
                        {self._keys.feed: self._feed_id}, count=READ_COUNT, block=BLOCK_MS
                    )
                    self._consume(reply)
            except (RedisError, GatewayError) as e:
                if not self.failing:
                    log.warning("redis unavailable; retrying", extra={"error": type(e).__name__})
                self.failing = True
            except Exception:
                log.exception("feed read loop failed; restarting it")
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_DELAYS[1])

    async def _place(self) -> None:
        """Where to read from: first the feed's end; after an outage, on from the last
        entry read, unless Redis lost its data meanwhile (a new epoch)."""
        epoch, seq, last_id = await self._position()
        if self.failing:
            log.warning("redis reachable again")
            self.failing = False
        if not self.epoch:
            self.epoch, self.delivered, self._feed_id = epoch.decode(), int(seq), last_id
            self._positioned.set()
            await self._check_durability()
        elif epoch.decode() != self.epoch:
            self.skip_to(epoch.decode(), int(seq))
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
        if epoch != self.epoch:
            self.skip_to(epoch, first - 1)
        elif first <= self.delivered:
            return []  # delivered already (the entry was read before a skip)
        elif first > self.delivered + 1:
            log.warning("feed trimmed past this instance", extra={"missed": first - 1})
            self.skip_to(epoch, first - 1)
        events = _feed_events(first, fields[b"e"])
        self._known.note(events)
        self.delivered = events[-1].seq
        return events


def _feed_events(first: int, lines: bytes) -> list[Event]:
    """A feed entry's events: one line "CHANNEL OFFSET SEVERITY DATA" each."""
    events = []
    for i, line in enumerate(lines.split(b"\n")):
        channel, offset, severity, data = line.split(b" ", 3)
        events.append(Event(channel.decode(), int(offset), first + i, int(severity), data))
    return events
