"""The asyncio Publisher: batches entries onto one `LogIngest.Publish` stream, tracks acks,
and after a lost connection resends every unacknowledged batch with its original
(producer_id, sequence), which the gateway stores once: nothing lost, nothing twice.

Three parts with one state: the Batcher (buffer, batch policy, sequence numbers; pure), the
Connection (one stream, acks matched strictly) and this Publisher, which owns the State and
decides what an ended stream calls for from one table, RETRY, by status code and whether
the gateway sent `retry-after-ms`:

- rate limited (RESOURCE_EXHAUSTED with `retry-after-ms`): wait that long, resend;
- unreachable, draining, connection lost (UNAVAILABLE; CANCELLED by a gateway stopping
  past its grace), outcome unknown (DEADLINE_EXCEEDED: the broker did not answer in time):
  reconnect with backoff, resend (the same sequence: stored once);
- token refused (UNAUTHENTICATED): ask the token source again and reconnect at once; a
  token refused twice, or MAX_REFUSALS refusals in a row, fails the publisher;
- message over the gateway's limit (RESOURCE_EXHAUSTED without `retry-after-ms`, gRPC's own
  size refusal): the batch is found (suspects go one at a time), split in halves and resent;
  a lone entry still too large fails with EntryTooLarge and the entries after it go on;
- anything else cannot succeed by resending: every entry fails with the status's error.

Errors. A refused entry (PermissionDenied, InvalidArgument, EntryTooLarge, BatchTooLarge)
and a fatal error go to `on_error` when one is given; otherwise the first of them is raised
by the next flush() or close(), with `also_failed` counting the others. An error the
publisher did not expect is logged at ERROR with its traceback and fails it
(PublisherFailed, the error as its cause): never a silent reconnect loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Unpack

import grpc

from logs_gateway.backoff import Backoff
from logs_gateway.batcher import Batcher
from logs_gateway.buffer import Buffer
from logs_gateway.connection import Answer, Connection
from logs_gateway.entries import make_entry
from logs_gateway.errors import (
    RESOURCE_EXHAUSTED,
    BatchTooLarge,
    EntryTooLarge,
    LogsGatewayError,
    PublisherClosed,
    PublisherFailed,
    PublishTimeout,
    Unauthenticated,
    Unavailable,
    error_for,
)
from logs_gateway.options import (
    DEFAULT_TARGET,
    MAX_PRODUCER_ID,
    MAX_REQUEST_BYTES,
    EntryFields,
    Options,
    Settings,
    Stats,
)
from logs_gateway.tokens import TokenSource, fetch_token, refresh_in
from logs_gateway.v1 import logs_pb2 as pb

__all__ = ["DEFAULT_TARGET", "EntryFields", "Options", "Publisher", "Settings", "State", "Stats"]

log = logging.getLogger("logs_gateway.publisher")

# A token refused this many times in a row (each time asked again) is given up on.
MAX_REFUSALS = 3


class State(enum.Enum):
    """Where a publisher is (`Publisher.state`)."""

    IDLE = "idle"  # not started
    CONNECTING = "connecting"  # asking for a token, opening a stream
    STREAMING = "streaming"  # a stream is open: batches go, acks come
    WAITING = "waiting"  # between streams: a backoff, or the gateway's retry-after-ms
    CLOSED = "closed"  # close() has finished
    FAILED = "failed"  # stopped on an error no retry can fix; publish() raises it


class Step(enum.Enum):
    """What an ended stream calls for."""

    WAIT_HINT = "wait the gateway's retry-after-ms, then resend"
    RECONNECT = "reconnect after a backoff, then resend"
    REFRESH = "ask the token source again, reconnect at once"
    SPLIT = "find the batch over the message limit, split it, resend"
    FAIL = "fail every entry: resending cannot succeed"


_Code = grpc.StatusCode
# The one retry table: (a stream's status code, whether `retry-after-ms` came with it).
RETRY: dict[tuple[grpc.StatusCode, bool], Step] = {
    (_Code.RESOURCE_EXHAUSTED, True): Step.WAIT_HINT,  # over the token's publish rate
    (_Code.RESOURCE_EXHAUSTED, False): Step.SPLIT,  # gRPC's "message larger than max"
    (_Code.UNAVAILABLE, True): Step.WAIT_HINT,
    (_Code.UNAVAILABLE, False): Step.RECONNECT,  # unreachable, draining, connection lost
    (_Code.CANCELLED, False): Step.RECONNECT,  # the gateway cancelled it (stopping past grace)
    # The gateway's broker did not answer in time: the batch may be stored. Resent under
    # its own sequence, it is stored once.
    (_Code.DEADLINE_EXCEEDED, False): Step.RECONNECT,
    (_Code.UNAUTHENTICATED, False): Step.REFRESH,  # expired on an open stream, or refused
}


def step_for(code: grpc.StatusCode, retry_after: float, write_failed: bool = False) -> Step:
    """RETRY's answer; INTERNAL after a failed write is the client's own status standing
    in for the gateway's, which grpc lost (grpc/grpc#36066): a reconnect finds out."""
    if code is _Code.INTERNAL and write_failed:
        return Step.RECONNECT
    return RETRY.get((code, retry_after > 0), Step.FAIL)


class _Stalled(Exception):
    """Acks stopped coming on a connection that looks open."""


class _EndedEarly(Exception):
    """The gateway ended the stream (status OK) while we were still sending."""


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
        self.state = State.IDLE
        self._token_source = token
        self._on_error = on_error
        self._credentials = credentials
        self._buffer = Buffer(self.options.max_buffer)
        self._batcher = Batcher(self.producer_id, self.options, self._buffer)
        self._counts = {"acked": 0, "duplicates": 0, "failed": 0, "reconnects": 0}
        self._first_error: LogsGatewayError | None = None
        self._error_count = 0
        self._fatal: LogsGatewayError | None = None
        self._closing = False
        self._flushing = 0
        self._progress_at = 0.0  # last ack, or the start of the stream
        self._reached_at = 0.0  # last time a stream was accepted (connect_timeout)
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
        self._reached_at = time.monotonic()
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
        if self.state is State.CLOSED:
            return
        if self._task is None and self._buffer.held:
            await self.start()
        self._closing = True
        self._wake.set()
        try:
            await self._wait_settled(self._buffer.accepted, timeout or self.options.close_timeout)
        finally:
            await self._stop()
            self.state = State.CLOSED
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

    def _fail_entries(self, count: int, error: LogsGatewayError) -> None:
        self._counts["failed"] += count
        self._report(error)
        self._settle(count)

    def _abandon(self, error: LogsGatewayError) -> None:
        """Give up on every waiting and unacknowledged entry, reporting `error` once."""
        if count := self._batcher.abandon():
            self._fail_entries(count, error)

    def _fail(self, error: LogsGatewayError) -> None:
        self.state = State.FAILED
        self._fatal = error
        self._abandon(error)

    # ---- the connection --------------------------------------------------------------

    async def _run(self) -> None:
        """Connect and stream until closed with nothing left; fail on what cannot succeed."""
        try:
            await self._connect_loop()
        except LogsGatewayError as e:  # raised to the caller: flush(), close(), publish()
            log.info("publisher to %s stopped: %s", self.target, e)
            self._fail(e)
        except Exception as e:
            log.exception("publisher to %s stopped on an unexpected error", self.target)
            failure = PublisherFailed(f"the publisher stopped on an unexpected error: {e!r}")
            failure.__cause__ = e
            self._fail(failure)

    async def _connect_loop(self) -> None:
        backoff = Backoff(self.options.max_backoff)
        refusals = _Refusals()
        while not (self._closing and not self._buffer.held):
            self.state = State.CONNECTING
            token = await fetch_token(self._token_source)
            refusals.check(token)
            connection = Connection(self._require_channel(), token)
            try:
                self.state = State.STREAMING
                await self._session(connection, token)
            except grpc.aio.AioRpcError as e:
                delay = self._after(e, connection, token, refusals, backoff)
            except _Stalled as e:
                log.info("publish stream stalled (%s); reconnecting", e)
                await self._reopen_channel()
                delay = backoff.next()
            except _EndedEarly as e:
                log.info("publish stream lost (%s); reconnecting", e)
                delay = backoff.next()
            else:
                self._reached_at = time.monotonic()
                refusals.clear()
                backoff.reset()
                continue
            if connection.accepted:
                backoff.reset()
            self.state = State.WAITING
            self._counts["reconnects"] += 1
            await asyncio.sleep(delay)

    def _after(
        self,
        error: grpc.aio.AioRpcError,
        connection: Connection,
        token: str,
        refusals: _Refusals,
        backoff: Backoff,
    ) -> float:
        """Apply RETRY to a stream that ended with `error`: the pause before the next one,
        or raise the error that fails the publisher."""
        code, details = error.code(), error.details() or error.code().name
        retry_after = _retry_after(error)
        step = step_for(code, retry_after, connection.write_failed)
        if step is Step.FAIL:
            raise error_for(code.value[0], f"{code.name}: {details}")
        if step is Step.REFRESH:
            if connection.accepted:  # it expired on a stream it opened: a fresh one is due
                refusals.clear()
            refusals.add(token, details)
            return 0.0
        if step is Step.SPLIT:
            self._refused_as_too_large(connection, details)
            return 0.0
        log.info("publish stream ended (%s: %s); reconnecting", code.name, details)
        if step is Step.WAIT_HINT:
            return retry_after
        return self._connect_pause(connection, details, backoff.next())

    def _connect_pause(self, connection: Connection, cause: str, delay: float) -> float:
        """`delay`, cut to what is left of options.connect_timeout; raise Unavailable once
        no stream has been accepted for that long."""
        timeout = self.options.connect_timeout
        if timeout is None or connection.accepted:
            return delay
        left = self._reached_at + timeout - time.monotonic()
        if left <= 0:
            raise Unavailable(f"cannot reach {self.target}: {_last_cause(cause)}")
        return min(delay, left)

    def _refused_as_too_large(self, connection: Connection, details: str) -> None:
        """The gateway's message limit refused a request: split the batch when it was the
        only one in flight, fail it when it held one entry, else find it one at a time."""
        if len(connection.in_flight) != 1:
            log.info("a batch is over the gateway's message limit; resending one at a time")
            self._batcher.refused_as_too_large()
            return
        batch = connection.in_flight[0]
        size = batch.request.ByteSize()
        if len(batch.entries) > 1:
            log.info(
                "batch of %d entries (%d bytes) is over the gateway's message limit; split",
                len(batch.entries),
                size,
            )
            self._batcher.split(batch)
            return
        self._batcher.drop(batch)
        message = f"entry is {size} bytes with its request, over the gateway's limit ({details})"
        self._fail_entries(1, EntryTooLarge(message, entry=batch.entries[0]))

    def _require_channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            raise PublisherClosed("the publisher is not started")
        return self._channel

    async def _reopen_channel(self) -> None:
        """Replace the channel, hence its TCP connection: gRPC would open the next stream
        on the same connection, and one that stopped answering may be half dead."""
        stalled, self._channel = (
            self._channel,
            _open_channel(self.target, self._credentials, self.options),
        )
        if stalled is not None:
            await stalled.close()

    async def _session(self, connection: Connection, token: str) -> None:
        """One Publish stream: resend what is unacknowledged, then stream new batches, until
        the token is due for refresh or the publisher is closed and everything is acked."""
        refresh = None if isinstance(self._token_source, str) else refresh_in(token)
        # At least a second per stream, even if the source hands out nearly expired tokens.
        refresh_at = math.inf if refresh is None else time.monotonic() + max(1.0, refresh)
        writer = asyncio.create_task(self._write(connection, refresh_at))
        reader = asyncio.create_task(self._read(connection))
        self._progress_at = time.monotonic()
        try:
            await self._watch(writer, reader, connection)
        finally:
            connection.cancel()
            for task in (writer, reader):
                task.cancel()
            await asyncio.gather(writer, reader, return_exceptions=True)

    async def _watch(
        self, writer: asyncio.Task[None], reader: asyncio.Task[None], connection: Connection
    ) -> None:
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
                raise _EndedEarly("the gateway ended the stream before we did")
            late = time.monotonic() - self._progress_at > self.options.ack_timeout
            if connection.in_flight and late:
                raise _Stalled(f"no ack for {self.options.ack_timeout} s")

    async def _write(self, connection: Connection, refresh_at: float) -> None:
        for batch in list(self._batcher.unacked.values()):  # a resend keeps its sequence
            if not await self._room(connection, refresh_at):
                break
            await connection.send(batch)
        while await self._next_batch(connection, refresh_at):
            if not connection.in_flight:
                self._progress_at = time.monotonic()
            await connection.send(self._batcher.take())
        await connection.finish()

    async def _room(self, connection: Connection, refresh_at: float) -> bool:
        """Wait until another batch may be in flight; False when the stream should end."""
        while len(connection.in_flight) >= self._batcher.in_flight_limit:
            if time.monotonic() >= refresh_at:
                return False
            await self._sleep_until_woken(refresh_at - time.monotonic())
        return True

    async def _next_batch(self, connection: Connection, refresh_at: float) -> bool:
        """True when the next batch should go (full, old enough or wanted now); False to
        end the stream (token refresh due, or closing with nothing left to send)."""
        while True:
            now = time.monotonic()
            if now >= refresh_at or (self._closing and not self._buffer.waiting):
                return False
            urgent = bool(self._flushing) or self._closing
            wait = self._batcher.wait(now, len(connection.in_flight), urgent)
            if wait <= 0:
                return True
            await self._sleep_until_woken(min(wait, refresh_at - now))

    async def _sleep_until_woken(self, timeout: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), None if timeout == math.inf else timeout)

    async def _read(self, connection: Connection) -> None:
        async for answer in connection.answers():
            self._on_answer(answer)

    def _on_answer(self, answer: Answer) -> None:
        batch = answer.batch
        self._batcher.answered(batch.sequence)
        self._progress_at = self._reached_at = time.monotonic()
        errors = _entry_errors(answer.results)
        self._counts["acked"] += len(batch.entries) - len(errors)
        self._counts["failed"] += len(errors)
        if answer.duplicate:
            self._counts["duplicates"] += len(batch.entries)
        for error in errors:
            self._report(error)
        self._settle(len(batch.entries))


def _entry_errors(pairs: list[tuple[pb.LogEntry, pb.EntryResult]]) -> list[LogsGatewayError]:
    """The errors of refused entries. Results alike for every entry of a batch of several
    (the same RESOURCE_EXHAUSTED message: a per-entry one names its entry's index) are the
    gateway refusing the batch as a whole: BatchTooLarge."""
    refused = [(entry, result) for entry, result in pairs if result.code]
    whole = (
        len(pairs) > 1
        and len(refused) == len(pairs)
        and all(r.code == RESOURCE_EXHAUSTED for _, r in refused)
        and len({r.message for _, r in refused}) == 1
    )
    if whole:
        return [BatchTooLarge(r.message, entry=e) for e, r in refused]
    return [error_for(r.code, r.message, e) for e, r in refused]


def _last_cause(details: str) -> str:
    """The innermost cause of a gRPC connect failure ("failed to connect to all addresses;
    last error: ...: Connection refused" -> "connection refused"), for a readable line."""
    cause = details.rpartition(": ")[2] or details
    return cause[:1].lower() + cause[1:]


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
