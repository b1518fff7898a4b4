"""The clustered broker: channel history in a NATS JetStream stream (`--broker nats://`).

One stream holds every channel, one subject each (broker_nats_subjects); the gateway
creates it at start or checks that it matches the settings (broker_nats_stream). Appends
are JetStream publishes, acknowledged once the stream stored them: with `--nats-replicas
3`, once a quorum of servers did (broker_nats_publish). Reads go to the stream's leader
(broker_nats_read). Live delivery follows interest: a gateway receives the channels its
subscriptions watch and nothing else (broker_nats_live).

While NATS is unreachable, appends fail at once with UNAVAILABLE, /ready says no, and
nats-py reconnects by itself; live subscribers then resume from history (a resync), since
what was stored meanwhile never reached this gateway live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import replace

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import SlowConsumerError

from gateway.core import broker
from gateway.core import broker_nats_pages as pages
from gateway.core.broker import PAGE, Appended, DedupKey, Gap, Listener, Page, PageSize, Usage
from gateway.core.broker_nats_channels import Channels
from gateway.core.broker_nats_live import Live
from gateway.core.broker_nats_publish import Publisher, unavailable
from gateway.core.broker_nats_read import Reader
from gateway.core.broker_nats_stream import StreamMismatch, StreamSpec, ensure
from gateway.core.channels import Pattern
from gateway.core.cursor import Cursor
from gateway.core.discovery import ChannelInfo
from gateway.core.events import Entry

log = logging.getLogger("logs_gateway.nats")

RETRY_DELAYS = (0.1, 2.0)  # first and longest pause between attempts at the first connect
STATE_EVERY = 2.0  # seconds between reads of the stream's state for usage()


class NatsBroker:
    """Broker protocol over a JetStream stream, shared by every gateway using it."""

    def __init__(
        self,
        servers: str,
        limits: broker.Limits,
        *,
        stream: str,
        replicas: int,
        lost_checked: int,
        listed: int,
        timeout: float = 2.0,
    ) -> None:
        self._servers = [s.strip() for s in servers.split(",") if s.strip()]
        c = limits
        spec = (c.max_entries, c.max_age, c.max_bytes, c.dedup_seconds)
        self.spec = StreamSpec(stream, replicas, *spec)
        self._timeout = timeout
        self._nc = Client()
        self._publisher = Publisher(self._nc, stream, timeout)
        self._reader = Reader(self._nc, stream, timeout)
        self._channels = Channels(self._nc, self._reader, stream, timeout, lost_checked, listed)
        self._live = Live(self._nc, self.spec.live_prefix, self._stream_end, self._resync_all)
        self._resync: list[Callable[[], None]] = []
        self._epoch = ""
        self._opening: asyncio.Task[None] | None = None
        self._opened = asyncio.Event()
        self._refused: StreamMismatch | None = None
        self._usage = Usage(0)
        self._usage_task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def epoch(self) -> str:
        return self._epoch

    # -- start --------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and create or check the stream, waiting at most the timeout; raises
        StreamMismatch when the stream contradicts the settings. While NATS is not
        reachable the broker keeps trying in the background (and is not ready)."""
        self._start_opening()
        assert self._opening is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._opening), self._timeout)
        if self._refused is not None:
            raise self._refused

    def _start_opening(self) -> None:
        if self._opening is None and not self._closed:
            self._opening = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        delay = RETRY_DELAYS[0]
        while not self._closed:
            try:
                await self._nc.connect(
                    servers=self._servers,
                    name="logs-gateway",
                    connect_timeout=self._timeout,  # type: ignore[arg-type]  # seconds
                    reconnect_time_wait=0.25,  # type: ignore[arg-type]
                    max_reconnect_attempts=-1,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnect,
                    reconnected_cb=self._on_reconnect,
                )
                break
            except (NatsError, OSError, TimeoutError) as e:
                log.warning("nats unreachable; retrying", extra={"error": type(e).__name__})
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_DELAYS[1])
        while not self._closed:
            try:
                await ensure(self._nc.jetstream(timeout=self._timeout), self.spec)
                self._set_epoch((await self._reader.state()).epoch)
                self._opened.set()
                self._usage_task = asyncio.get_running_loop().create_task(self._poll_usage())
                return
            except StreamMismatch as e:
                log.error("nats stream refused", extra={"error": str(e)})
                self._refused = e
                return
            except (NatsError, TimeoutError) as e:  # JetStream not ready yet (no leader)
                log.warning("nats stream unavailable; retrying", extra={"error": repr(e)})
                await asyncio.sleep(RETRY_DELAYS[1])

    async def _started(self) -> None:
        self._start_opening()
        if self._refused is not None:
            raise unavailable() from self._refused
        if not self._opened.is_set():
            try:
                await asyncio.wait_for(self._opened.wait(), self._timeout)
            except TimeoutError:
                raise unavailable() from None

    # -- Broker -------------------------------------------------------------------------

    async def append(self, entries: Sequence[Entry], key: DedupKey | None) -> Appended:
        """Returns once JetStream acknowledged every message of the batch (one per
        channel); a key seen within the duplicate window returns the first answer."""
        await self._started()
        events, duplicate = await self._publisher.append(entries, key)
        return Appended(events, duplicate)

    async def head(self) -> int:
        await self._started()
        return await self._reader.head()

    async def read_after(
        self,
        patterns: Sequence[Pattern],
        after: Cursor,
        size: PageSize = PAGE,
        min_severity: int = 0,
    ) -> AsyncGenerator[Page, None]:
        await self._started()
        reader = self._reader
        age = self.spec.max_age
        async for page in pages.read_after(
            reader, patterns, after, self._epoch, size, min_severity, age
        ):
            yield page

    async def read_before(
        self,
        patterns: Sequence[Pattern],
        before: int | None,
        size: PageSize = PAGE,
        min_severity: int = 0,
    ) -> AsyncGenerator[Page, None]:
        await self._started()
        age = self.spec.max_age
        async for page in pages.read_before(
            self._reader, patterns, before, size, min_severity, age
        ):
            yield page

    async def channels(
        self, patterns: Sequence[Pattern], before: int | None, limit: int
    ) -> list[ChannelInfo]:
        await self._started()
        return await self._channels.page(patterns, before, limit, self.spec.max_age)

    async def lost(self, patterns: Sequence[Pattern]) -> list[Gap]:
        await self._started()
        never_trimmed = (await self._reader.state()).first_seq <= 1
        return await self._channels.lost(patterns, never_trimmed)

    async def watch(self, pattern: Pattern) -> None:
        await self._started()
        try:
            await self._live.watch(pattern)
        except (NatsError, TimeoutError) as e:
            raise unavailable() from e

    def unwatch(self, pattern: Pattern) -> None:
        self._live.unwatch(pattern)

    def add_listener(self, listener: Listener) -> None:
        self._live.listeners.append(listener)

    async def ready(self) -> bool:
        """Whether NATS answers and the stream has a leader that reports its state."""
        if self._refused is not None or not self._opened.is_set() or not self._nc.is_connected:
            return False
        try:
            await self._reader.state()
        except Exception:
            return False
        return True

    def usage(self) -> Usage:
        """Channels (subjects), entries' messages and bytes in the stream, as last read
        (every STATE_EVERY seconds), and the listings and loss counts cut at a bound."""
        return replace(self._usage, bounds_reached=self._channels.bounds_reached)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._live.listeners.clear()
        for task in (self._opening, self._usage_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        nc = self._nc
        if nc.is_connected or nc.is_reconnecting or nc.is_connecting:  # else nothing to close
            with contextlib.suppress(NatsError, TimeoutError):
                await nc.close()

    # -- beyond the protocol ------------------------------------------------------------

    def on_resync(self, callback: Callable[[], None]) -> None:
        """`callback` runs when live delivery has a hole: subscribers resume from history."""
        self._resync.append(callback)

    # -- helpers ------------------------------------------------------------------------

    async def _stream_end(self) -> int:
        state = await self._reader.state()
        return int(state.last_seq)

    def _set_epoch(self, epoch: str) -> None:
        if self._epoch and epoch != self._epoch:
            log.warning("nats stream is new (a new epoch)", extra={"epoch": epoch})
            self._resync_all("the stream was created again")
        self._epoch = epoch

    def _resync_all(self, why: str) -> None:
        for callback in self._resync:
            callback()

    async def _poll_usage(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                state = await self._reader.state()
                self._set_epoch(state.epoch)
                self._usage = Usage(state.channels, None, state.bytes)
            await asyncio.sleep(STATE_EVERY)

    async def _on_error(self, error: Exception) -> None:
        if isinstance(error, SlowConsumerError):
            self._live.gap(f"nats dropped live messages for a slow consumer ({error.subject})")
        else:
            log.warning("nats connection error", extra={"error": repr(error)[:300]})

    async def _on_disconnect(self) -> None:
        if not self._closed:
            log.warning("nats disconnected; reconnecting")

    async def _on_reconnect(self) -> None:
        self._live.gap("reconnected to nats: what was stored meanwhile never arrived live")
