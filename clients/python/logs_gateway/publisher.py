"""The asyncio Publisher: batches entries onto one `LogIngest.Publish` stream, tracks acks,
and after a lost connection resends every unacknowledged batch with its original
(producer_id, sequence), which the gateway stores once: nothing lost, nothing twice.

Errors. A refused entry (PermissionDenied, InvalidArgument, EntryTooLarge) and a fatal stream
error (Unauthenticated after asking the token source again) go to `on_error` when one is
given; otherwise the first of them is raised by the next flush() or close(), with
`also_failed` counting the others. Unreachable or draining gateways are retried silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypedDict, Unpack

import grpc

from logs_gateway.backoff import Backoff
from logs_gateway.buffer import Buffer
from logs_gateway.entries import make_entry
from logs_gateway.errors import (
    EntryTooLarge,
    LogsGatewayError,
    PublisherClosed,
    PublishTimeout,
    Unauthenticated,
    error_for,
)
from logs_gateway.tokens import TokenSource, fetch_token, refresh_in
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

log = logging.getLogger("logs_gateway.publisher")

DEFAULT_TARGET = "127.0.0.1:50051"
# gRPC's default message limit (4 MiB), less room for the request's own fields.
MAX_REQUEST_BYTES = 4 * 1024 * 1024 - 4096
MAX_PRODUCER_ID = 128
# The gateway remembers the last 1024 sequences of a producer; stay well inside that.
MAX_IN_FLIGHT = 512
# Stream errors that a resend cannot fix.
FATAL_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)
# A token refused this many times in a row (each time asked again) is given up on.
MAX_REFUSALS = 3


@dataclass(frozen=True, slots=True)
class Options:
    """Tuning. The defaults suit a service logging a few thousand entries per second."""

    batch_size: int = 500  # entries per batch (the gateway accepts up to 1000 by default)
    batch_bytes: int = 1024 * 1024  # serialized bytes per batch
    linger: float = 0.02  # seconds a partial batch waits for more entries
    max_buffer: int = 10_000  # entries waiting or unacknowledged
    when_full: Literal["block", "drop"] = "block"  # publish() waits, or drops and counts
    max_in_flight: int = 32  # batches sent and not yet acknowledged
    ack_timeout: float = 30.0  # no ack for this long while some are due: reconnect
    max_backoff: float = 5.0  # longest pause between reconnects, seconds
    close_timeout: float = 30.0  # how long close() waits for acks by default
    # A ping this often (seconds) finds a connection that died silently (a NAT or balancer
    # forgetting it) while nothing is being sent; the gateway allows one every 5 s.
    keepalive: float = 20.0

    def __post_init__(self) -> None:
        checks = {
            "batch_size": 1 <= self.batch_size <= 100_000,
            "batch_bytes": 1 <= self.batch_bytes <= MAX_REQUEST_BYTES,
            "linger": 0 <= self.linger <= 60,
            "max_buffer": self.max_buffer >= 1,
            "when_full": self.when_full in ("block", "drop"),
            "max_in_flight": 1 <= self.max_in_flight <= MAX_IN_FLIGHT,
            "ack_timeout": self.ack_timeout > 0,
            "max_backoff": self.max_backoff > 0,
            "close_timeout": self.close_timeout > 0,
            "keepalive": 5 <= self.keepalive <= 3600,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"Options.{name}={getattr(self, name)!r} is out of range")


class EntryFields(TypedDict, total=False):
    """Optional fields of a published entry (see entries.make_entry)."""

    level: str | int
    attributes: Mapping[str, object]
    source: str
    time_ns: int | None
    trace_id: bytes
    span_id: bytes


class Settings(TypedDict, total=False):
    """The keyword arguments of Publisher (and SyncPublisher) after token and target."""

    producer_id: str | None
    options: Options | None
    on_error: Callable[[LogsGatewayError], None] | None
    credentials: grpc.ChannelCredentials | None


@dataclass(frozen=True, slots=True)
class Stats:
    accepted: int  # entries taken into the buffer
    acked: int  # entries the gateway stored
    duplicates: int  # entries acknowledged again after a resend (stored once)
    failed: int  # entries refused by the gateway or given up on
    dropped: int  # entries not taken: buffer full with when_full="drop"
    buffered: int  # entries waiting or unacknowledged now
    reconnects: int


@dataclass(frozen=True, slots=True)
class _Batch:
    entries: list[pb.LogEntry]
    request: pb.PublishRequest


class _Stalled(Exception):
    """Acks stopped coming on a connection that looks open."""


class _Refusals:
    """Consecutive refusals of the token. The source is asked again after each; a token
    refused twice, or MAX_REFUSALS refusals in a row, is given up on."""

    def __init__(self) -> None:
        self.count = 0
        self.token = ""
        self.detail = ""

    def add(self, token: str, detail: str) -> None:
        self.count += 1
        self.token = token
        self.detail = detail

    def check(self, token: str) -> None:
        if self.count and (token == self.token or self.count >= MAX_REFUSALS):
            raise Unauthenticated(f"the gateway refused the token: {self.detail}")

    def clear(self) -> None:
        self.count = 0


class Publisher:
    """Publishes log entries to a gateway over gRPC. Use `async with Publisher(token) as p`.

    `token` is a JWT string or a callable (plain or async) returning one; a callable is asked
    again before the token expires and when the gateway refuses it.
    """

    def __init__(
        self,
        token: TokenSource,
        target: str = DEFAULT_TARGET,
        *,
        producer_id: str | None = None,
        options: Options | None = None,
        on_error: Callable[[LogsGatewayError], None] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        if isinstance(token, str) and not token.strip():
            raise ValueError("token is empty")
        self.producer_id = producer_id or uuid.uuid4().hex
        if len(self.producer_id) > MAX_PRODUCER_ID:
            raise ValueError(f"producer_id is longer than {MAX_PRODUCER_ID} characters")
        self.target = target
        self.options = options or Options()
        self._token_source = token
        self._on_error = on_error
        self._credentials = credentials
        self._buffer = Buffer(self.options.max_buffer)
        self._unacked: OrderedDict[int, _Batch] = OrderedDict()
        self._sequence = 0
        self._counts = {"acked": 0, "duplicates": 0, "failed": 0, "reconnects": 0}
        self._first_error: LogsGatewayError | None = None
        self._error_count = 0
        self._fatal: LogsGatewayError | None = None
        self._closing = False
        self._closed = False
        self._flushing = 0
        self._progress_at = 0.0
        self._wake = asyncio.Event()  # the writer: entries, acks, flush or close
        self._settled = asyncio.Event()  # flush() and blocked publish(): entries settled
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._wake_scheduled = False
        self._channel: grpc.aio.Channel | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Publisher:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def stats(self) -> Stats:
        return Stats(
            accepted=self._buffer.accepted,
            dropped=self._buffer.dropped,
            buffered=self._buffer.held,
            **self._counts,
        )

    async def start(self) -> None:
        """Connect in the background (publish() may be called at once)."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._channel = _open_channel(self.target, self._credentials, self.options)
        self._task = asyncio.create_task(self._run(), name=f"logs-gateway {self.producer_id}")

    # ---- publishing ------------------------------------------------------------------

    async def publish(self, channel: str, message: str, **fields: Unpack[EntryFields]) -> bool:
        """Buffer one entry; False if it was dropped (buffer full with when_full="drop").
        Waits while the buffer is full with when_full="block"."""
        return await self.publish_entry(make_entry(channel, message, **fields))

    async def publish_entry(self, entry: pb.LogEntry) -> bool:
        size = self._admit(entry)
        while not self._offer(entry, size):
            if self.options.when_full == "drop":
                return self._drop()
            self._settled.clear()
            await self._settled.wait()
            self._admit(entry)
        return True

    def publish_nowait(self, channel: str, message: str, **fields: Unpack[EntryFields]) -> bool:
        """Buffer one entry without ever waiting; False if the buffer was full (counted in
        stats.dropped). Safe to call from any thread."""
        return self.publish_entry_nowait(make_entry(channel, message, **fields))

    def publish_entry_nowait(self, entry: pb.LogEntry) -> bool:
        return self._offer(entry, self._admit(entry)) or self._drop()

    def _publish_entry_blocking(self, entry: pb.LogEntry) -> bool:
        """publish_entry() for a thread other than the loop's (SyncPublisher)."""
        size = self._admit(entry)
        while not self._offer(entry, size):
            if self.options.when_full == "drop":
                return self._drop()
            self._buffer.wait_for_space(timeout=0.5)
            self._admit(entry)
        return True

    def _admit(self, entry: pb.LogEntry) -> int:
        """The entry's size, or raise if it can never be sent."""
        if self._fatal is not None:
            raise self._fatal
        if self._closing:
            raise PublisherClosed("the publisher is closed")
        size = entry.ByteSize()
        if size > MAX_REQUEST_BYTES:
            raise EntryTooLarge(f"entry is {size} bytes; a gRPC message holds at most 4 MiB")
        return size

    def _offer(self, entry: pb.LogEntry, size: int) -> bool:
        if not self._buffer.offer(entry, size):
            return False
        self._wake_writer()
        return True

    def _drop(self) -> bool:
        self._buffer.count_drop()
        return False

    def _wake_writer(self) -> None:
        """Set the writer's event from any thread, scheduling at most one wake-up at a time
        from other threads (a burst of log records must not flood the loop)."""
        if self._loop is None or threading.get_ident() == self._loop_thread:
            self._wake.set()
        elif not self._wake_scheduled:
            self._wake_scheduled = True
            with contextlib.suppress(RuntimeError):  # the loop is closed: close() ran
                self._loop.call_soon_threadsafe(self._wake_from_thread)

    def _wake_from_thread(self) -> None:
        self._wake_scheduled = False
        self._wake.set()

    # ---- flush and close -------------------------------------------------------------

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every entry buffered so far is acknowledged (stored or refused), then
        raise the first error not reported yet. Raises PublishTimeout after `timeout` s."""
        target = self._buffer.accepted
        self._flushing += 1
        self._wake.set()
        try:
            await self._wait_settled(target, timeout)
        finally:
            self._flushing -= 1
        self._raise_errors()

    async def close(self, timeout: float | None = None) -> None:
        """Send what is buffered, wait for its acks (at most `timeout`, default
        options.close_timeout), close the connection, and raise the first error not
        reported yet. Safe to call twice."""
        if self._closed:
            return
        if self._task is None and self._buffer.held:
            await self.start()
        self._closing = True
        self._wake.set()
        try:
            await self._wait_settled(self._buffer.accepted, timeout or self.options.close_timeout)
        finally:
            self._closed = True
            await self._stop()
        self._raise_errors()

    async def _wait_settled(self, target: int, timeout: float | None) -> None:
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        while self._buffer.settled < target:
            if self._fatal is not None or self._task is None or self._task.done():
                self._abandon(self._fatal or PublisherClosed("the publisher is not running"))
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pending = target - self._buffer.settled
                raise PublishTimeout(f"{pending} entries not acknowledged in {timeout} s", pending)
            self._settled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), min(remaining, 3600))

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._channel is not None:
            await self._channel.close()
        pending = self._buffer.held
        if pending:
            self._abandon(PublishTimeout(f"closed with {pending} entries unacknowledged", pending))

    def _raise_errors(self) -> None:
        error, self._first_error = self._first_error, None
        if error is not None:
            error.also_failed = self._error_count - 1
            self._error_count = 0
            raise error

    def _report(self, error: LogsGatewayError) -> None:
        if self._on_error is None:
            self._first_error = self._first_error or error
            self._error_count += 1
            return
        try:
            self._on_error(error)
        except Exception:
            log.exception("on_error callback failed")

    def _settle(self, count: int) -> None:
        self._buffer.settle(count)
        self._settled.set()
        self._wake.set()

    def _abandon(self, error: LogsGatewayError) -> None:
        """Give up on every waiting and unacknowledged entry, reporting `error` once."""
        count = sum(len(b.entries) for b in self._unacked.values())
        self._unacked.clear()
        while self._buffer.waiting:
            count += len(self._buffer.take(100_000, MAX_REQUEST_BYTES * 1024))
        if count:
            self._counts["failed"] += count
            self._report(error)
            self._settle(count)

    # ---- the connection --------------------------------------------------------------

    async def _run(self) -> None:
        """Connect, stream, reconnect: until closing with nothing left, or a fatal error."""
        backoff = Backoff(self.options.max_backoff)
        refusals = _Refusals()
        while not (self._closing and not self._buffer.held) and self._fatal is None:
            token, delay = "", 0.0
            try:
                token = await fetch_token(self._token_source)
                refusals.check(token)
                await self._session(token)
            except Unauthenticated as e:
                self._fail(e)
                return
            except grpc.aio.AioRpcError as e:
                if e.code() in FATAL_CODES:
                    self._fail(error_for(e.code().value[0], e.details() or e.code().name))
                    return
                if e.code() == grpc.StatusCode.UNAUTHENTICATED:
                    refusals.add(token, e.details() or "")
                    continue  # ask the token source again, at once
                log.info("publish stream lost (%s); reconnecting", e.code().name)
                delay = _retry_after(e)
            except _Stalled as e:
                log.info("publish stream stalled (%s); reconnecting", e)
                await self._reopen_channel()
            except Exception as e:  # the token source failed, a write failed
                log.info("publish stream lost (%s: %s); reconnecting", type(e).__name__, e)
            else:
                refusals.clear()
                backoff.reset()
                continue
            self._counts["reconnects"] += 1
            await asyncio.sleep(max(delay, backoff.next()))

    async def _reopen_channel(self) -> None:
        """Replace the channel, hence its TCP connection: gRPC would open the next stream
        on the same connection, and one that stopped answering may be half dead."""
        stalled, self._channel = (
            self._channel,
            _open_channel(self.target, self._credentials, self.options),
        )
        if stalled is not None:
            await stalled.close()

    def _fail(self, error: LogsGatewayError) -> None:
        self._fatal = error
        self._abandon(error)

    async def _session(self, token: str) -> None:
        """One Publish stream: resend what is unacknowledged, then stream new batches, until
        the token is due for refresh or the publisher is closed and everything is acked."""
        call = pb_grpc.LogIngestStub(self._channel).Publish(
            metadata=(("authorization", f"Bearer {token}"),)
        )
        refresh = None if isinstance(self._token_source, str) else refresh_in(token)
        # At least a second per stream, even if the source hands out nearly expired tokens.
        refresh_at = math.inf if refresh is None else time.monotonic() + max(1.0, refresh)
        writer = asyncio.create_task(self._write(call, refresh_at))
        reader = asyncio.create_task(self._read(call))
        self._progress_at = time.monotonic()
        try:
            await self._watch(writer, reader)
        finally:
            call.cancel()
            for task in (writer, reader):
                task.cancel()
            await asyncio.gather(writer, reader, return_exceptions=True)

    async def _watch(self, writer: asyncio.Task[None], reader: asyncio.Task[None]) -> None:
        """Until both tasks end; raises the first failure, or _Stalled when acks stop."""
        pending = {writer, reader}
        while pending:
            done, pending = await asyncio.wait(
                pending, timeout=self.options.ack_timeout / 4, return_when="FIRST_EXCEPTION"
            )
            if writer in done and writer.exception() is not None and reader in pending:
                # A write fails once the call has ended; the reader's error has its status.
                await asyncio.wait({reader}, timeout=1.0)
            for task in (reader, writer):
                if task.done() and (error := task.exception()) is not None:
                    raise error
            if reader.done() and not writer.done():
                raise ConnectionError("the gateway ended the stream before we did")
            if self._unacked and time.monotonic() - self._progress_at > self.options.ack_timeout:
                raise _Stalled(f"no ack for {self.options.ack_timeout} s")

    async def _write(self, call: grpc.aio.StreamStreamCall, refresh_at: float) -> None:
        for unacked in list(self._unacked.values()):  # a resend keeps its sequence
            await call.write(unacked.request)
        while (batch := await self._next_batch(refresh_at)) is not None:
            if not self._unacked:
                self._progress_at = time.monotonic()
            self._unacked[batch.request.sequence] = batch
            await call.write(batch.request)
        await call.done_writing()

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:
        async for ack in call:
            self._on_ack(ack)

    async def _next_batch(self, refresh_at: float) -> _Batch | None:
        """The next batch when it is full, old enough or wanted now (flush, close); None
        to end the stream (token refresh due, or closing with nothing left to send)."""
        while True:
            now = time.monotonic()
            if now >= refresh_at or (self._closing and not self._buffer.waiting):
                return None
            wait = min(self._batch_wait(now), refresh_at - now)
            if wait <= 0:
                return self._make_batch()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), None if wait == math.inf else wait)

    def _batch_wait(self, now: float) -> float:
        """Seconds until a batch should go (0: now; inf: until woken)."""
        if not self._buffer.waiting or len(self._unacked) >= self.options.max_in_flight:
            return math.inf
        if (
            self._buffer.waiting >= self.options.batch_size
            or self._buffer.waiting_bytes >= self.options.batch_bytes
            or self._flushing
            or self._closing
        ):
            return 0.0
        return self._buffer.first_at + self.options.linger - now

    def _make_batch(self) -> _Batch:
        entries = self._buffer.take(self.options.batch_size, self.options.batch_bytes)
        self._sequence += 1
        request = pb.PublishRequest(
            producer_id=self.producer_id, sequence=self._sequence, entries=entries
        )
        return _Batch(entries, request)

    def _on_ack(self, ack: pb.PublishAck) -> None:
        batch = self._unacked.pop(ack.sequence, None)
        if batch is None:
            return  # the ack of a batch resent after its first ack arrived
        self._progress_at = time.monotonic()
        errors = [
            error_for(result.code, result.message, entry)
            for entry, result in zip(batch.entries, ack.results, strict=False)
            if result.code
        ]
        self._counts["acked"] += len(batch.entries) - len(errors)
        self._counts["failed"] += len(errors)
        if ack.duplicate:
            self._counts["duplicates"] += len(batch.entries)
        for error in errors:
            self._report(error)
        self._settle(len(batch.entries))


def _retry_after(error: grpc.aio.AioRpcError) -> float:
    """The gateway's `retry-after-ms` hint (sent with RESOURCE_EXHAUSTED when a token
    publishes over its rate), in seconds; 0 without one."""
    hint = dict(error.trailing_metadata() or ()).get("retry-after-ms", "")
    return min(int(hint), 60_000) / 1000 if isinstance(hint, str) and hint.isdigit() else 0.0


def _open_channel(
    target: str, credentials: grpc.ChannelCredentials | None, tuning: Options
) -> grpc.aio.Channel:
    """A channel that retries connecting quickly (gRPC's own default starts at 1 s) and
    pings to notice a dead connection (an unanswered ping fails the stream: reconnect)."""
    options = [
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", int(tuning.max_backoff * 1000)),
        ("grpc.keepalive_time_ms", int(tuning.keepalive * 1000)),
        ("grpc.keepalive_timeout_ms", int(min(tuning.keepalive, 10) * 1000)),
        ("grpc.http2.ping_timeout_ms", int(min(tuning.keepalive, 10) * 1000)),
        ("grpc.http2.max_pings_without_data", 0),  # idle is when a ping is needed most
    ]
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, credentials, options=options)
