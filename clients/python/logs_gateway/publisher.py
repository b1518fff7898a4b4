"""The asyncio Publisher: batches entries onto one `LogIngest.Publish` stream, tracks acks,
and after a lost connection resends every unacknowledged batch with its original
(producer_id, sequence), which the gateway stores once: nothing lost, nothing twice.

Small parts, one state: the Lifecycle (the State, and every decision that depends on it),
the Batcher (buffer, batch policy, sequence numbers; pure), the Connection (one stream,
acks matched strictly) run by a Session, the retry table (retry.py: what an ended stream
calls for) and the ErrorReport (report.py: where refused entries and a fatal error go). An
error the publisher did not expect is logged at ERROR with its traceback and fails it
(PublisherFailed, the error as its cause): never a silent reconnect loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable
from typing import Unpack

import grpc

from logs_gateway.backoff import Backoff
from logs_gateway.batcher import Batcher
from logs_gateway.buffer import Buffer
from logs_gateway.connection import Answer, Connection, open_channel
from logs_gateway.entries import make_entry
from logs_gateway.errors import (
    EntryTooLarge,
    LogsGatewayError,
    PublisherClosed,
    PublisherFailed,
    PublishTimeout,
    Unavailable,
    error_for,
)
from logs_gateway.lifecycle import Lifecycle, State
from logs_gateway.options import (
    DEFAULT_TARGET,
    MAX_PRODUCER_ID,
    MAX_REQUEST_BYTES,
    EntryFields,
    Options,
    Settings,
    Stats,
)
from logs_gateway.report import ErrorReport, entry_errors
from logs_gateway.retry import Refusals, Step, last_cause, retry_after, step_for
from logs_gateway.session import EndedEarly, Session, Stalled
from logs_gateway.tokens import TokenSource, fetch_token, refresh_in
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.wake import Wake

__all__ = ["DEFAULT_TARGET", "EntryFields", "Options", "Publisher", "Settings", "State", "Stats"]

log = logging.getLogger("logs_gateway.publisher")


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
        self._lifecycle = Lifecycle()
        self._token_source = token
        self._credentials = credentials
        self._errors = ErrorReport(on_error)
        self._buffer = Buffer(self.options.max_buffer)
        self._batcher = Batcher(self.producer_id, self.options, self._buffer)
        self._counts = {"acked": 0, "duplicates": 0, "failed": 0, "reconnects": 0}
        self._reached_at = 0.0  # last time a stream was accepted (connect_timeout)
        self._wake = Wake()  # the writer: entries, acks, flush or close
        self._settled = asyncio.Event()  # flush() and blocked publish(): entries settled
        self._channel: grpc.aio.Channel | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Publisher:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def state(self) -> State:
        return self._lifecycle.state

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
        self._wake.bind()
        self._channel = open_channel(self.target, self._credentials, self.options)
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

    def publish_entry_from_thread(self, entry: pb.LogEntry) -> bool:
        """publish_entry() for a thread other than the loop's (SyncPublisher): blocks that
        thread while the buffer is full with when_full="block"."""
        size = self._admit(entry)
        while not self._offer(entry, size):
            if self.options.when_full == "drop":
                return self._drop()
            self._buffer.wait_for_space(timeout=0.5)
            self._admit(entry)
        return True

    def _admit(self, entry: pb.LogEntry) -> int:
        """The entry's size, or raise if it can never be sent."""
        self._lifecycle.admit()
        size = entry.ByteSize()
        if size > MAX_REQUEST_BYTES:
            raise EntryTooLarge(f"entry is {size} bytes; a gRPC message holds at most 4 MiB")
        return size

    def _offer(self, entry: pb.LogEntry, size: int) -> bool:
        if not self._buffer.offer(entry, size):
            return False
        self._wake.set()
        return True

    def _drop(self) -> bool:
        self._buffer.count_drop()
        return False

    # ---- flush and close -------------------------------------------------------------

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every entry buffered so far is acknowledged (stored or refused), then
        raise the first error not reported yet. Raises PublishTimeout after `timeout` s."""
        target = self._buffer.accepted
        self._batcher.flush_to = max(self._batcher.flush_to, target)
        self._wake.set()
        await self._wait_settled(target, timeout)
        self._errors.raise_first()

    async def close(self, timeout: float | None = None) -> None:
        """Send what is buffered, wait for its acks (at most `timeout`, default
        options.close_timeout), close the connection, and raise the first error not
        reported yet. Safe to call twice."""
        if self.state is State.CLOSED:
            return
        if self._task is None and self._buffer.held:
            await self.start()
        self._lifecycle.close()
        self._wake.set()
        try:
            await self._wait_settled(self._buffer.accepted, timeout or self.options.close_timeout)
        finally:
            await self._stop()
            self._lifecycle.closed()
        self._errors.raise_first()

    async def _wait_settled(self, target: int, timeout: float | None) -> None:
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        while self._buffer.settled < target:
            if self._task is None or self._task.done():
                failure = self._lifecycle.failure
                self._abandon(failure or PublisherClosed("the publisher is not running"))
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

    def _settle(self, count: int) -> None:
        self._buffer.settle(count)
        self._settled.set()
        self._wake.set()

    def _fail_entries(self, count: int, error: LogsGatewayError) -> None:
        self._counts["failed"] += count
        self._errors.add(error)
        self._settle(count)

    def _abandon(self, error: LogsGatewayError) -> None:
        """Give up on every waiting and unacknowledged entry, reporting `error` once."""
        if count := self._batcher.abandon():
            self._fail_entries(count, error)

    def _fail(self, error: LogsGatewayError) -> None:
        self._lifecycle.fail(error)
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
        refusals = Refusals()
        while not (self._lifecycle.draining and not self._buffer.held):
            self._lifecycle.step(State.CONNECTING)
            token = await fetch_token(self._token_source)
            refusals.check(token)
            session = self._session(token)
            try:
                self._lifecycle.step(State.STREAMING)
                await session.run()
            except grpc.aio.AioRpcError as e:
                delay = self._after(e, session.connection, token, refusals, backoff)
            except Stalled as e:
                log.info("publish stream stalled (%s); reconnecting", e)
                await self._reopen_channel()
                delay = backoff.next()
            except EndedEarly as e:
                log.info("publish stream lost (%s); reconnecting", e)
                delay = backoff.next()
            else:
                self._reached_at = time.monotonic()
                refusals.clear()
                backoff.reset()
                continue
            if session.connection.accepted:
                backoff.reset()
            self._lifecycle.step(State.WAITING)
            self._counts["reconnects"] += 1
            await asyncio.sleep(delay)

    def _session(self, token: str) -> Session:
        """A stream with `token`, to end when it is due for refresh (at least a second on,
        even if the source hands out nearly expired tokens)."""
        refresh = None if isinstance(self._token_source, str) else refresh_in(token)
        refresh_at = math.inf if refresh is None else time.monotonic() + max(1.0, refresh)
        connection = Connection(self._require_channel(), token)
        return Session(
            connection, self._batcher, self._lifecycle, self._wake, self._on_answer, refresh_at
        )

    def _after(
        self,
        error: grpc.aio.AioRpcError,
        connection: Connection,
        token: str,
        refusals: Refusals,
        backoff: Backoff,
    ) -> float:
        """Apply the retry table to a stream that ended with `error`: the pause before the
        next one, or raise the error that fails the publisher."""
        code, details = error.code(), error.details() or error.code().name
        hint = retry_after(error)
        step = step_for(code, hint, connection.write_failed)
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
            return hint
        return self._connect_pause(connection, details, backoff.next())

    def _connect_pause(self, connection: Connection, cause: str, delay: float) -> float:
        """`delay`, cut to what is left of options.connect_timeout; raise Unavailable once
        no stream has been accepted for that long."""
        timeout = self.options.connect_timeout
        if timeout is None or connection.accepted:
            return delay
        left = self._reached_at + timeout - time.monotonic()
        if left <= 0:
            raise Unavailable(f"cannot reach {self.target}: {last_cause(cause)}")
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
            open_channel(self.target, self._credentials, self.options),
        )
        if stalled is not None:
            await stalled.close()

    def _on_answer(self, answer: Answer) -> None:
        batch = answer.batch
        self._batcher.answered(batch.sequence)
        self._reached_at = time.monotonic()
        errors = entry_errors(answer.results)
        self._counts["acked"] += len(batch.entries) - len(errors)
        self._counts["failed"] += len(errors)
        if answer.duplicate:
            self._counts["duplicates"] += len(batch.entries)
        for error in errors:
            self._errors.add(error)
        self._settle(len(batch.entries))
