"""gRPC servicers: LogIngest.Publish (bidi stream of batches) and LogStream.Subscribe."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from typing import Any, NoReturn

import grpc
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

from gateway.api.convert import entry_from_proto, entry_to_proto, gap_to_proto
from gateway.api.grpc.auth import principal as authenticated
from gateway.core.admission import Admission
from gateway.core.broker import READ_TURNS, Broker, Gap, PageSize, catch_up
from gateway.core.channels import parse_pattern
from gateway.core.cursor import decode_cursor, encode_cursor
from gateway.core.endings import End, grpc_error
from gateway.core.errors import Code, GatewayError, invalid
from gateway.core.events import Event, level_severity
from gateway.core.hub import Hub
from gateway.core.idempotency import producer_key
from gateway.core.ingest import BatchOutcome, Ingest
from gateway.core.subscription import EventSubscription
from gateway.core.tokens import Principal

log = logging.getLogger("logs_gateway.grpc")

_STATUS = {code.value[0]: code for code in grpc.StatusCode}
MAX_PRODUCER_ID = 128
CONVERTED = 4096  # stored entries kept converted for the next subscriber of the same event
PAGE = PageSize()  # what a Subscribe reads of history at a time (it holds one page)


def grpc_status(error: GatewayError) -> grpc.StatusCode:
    return _STATUS[error.code.grpc_code]


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: GatewayError) -> NoReturn:
    """End the call with the error's status; a retry hint travels as `retry-after-ms`."""
    if error.retry_after is not None:
        hint = str(math.ceil(error.retry_after * 1000))
        context.set_trailing_metadata((("retry-after-ms", hint),))
    await context.abort(grpc_status(error), error.message)
    raise AssertionError("unreachable: abort raises")


def ack(sequence: int, batch: BatchOutcome) -> pb.PublishAck:
    epoch = batch.epoch
    # Results as dicts, built into messages by one constructor call: 0.6 the cost of
    # `results.add()` per entry, a third of building each EntryResult.
    results = [
        {"code": o.code.grpc_code, "message": o.message}
        if isinstance(o, GatewayError)
        else {"offset": o.offset, "cursor": encode_cursor(epoch, o.seq)}
        for o in batch.outcomes
    ]
    return pb.PublishAck(sequence=sequence, duplicate=batch.duplicate, results=results)


class Stopping:
    """Set when the gateway drains; open streams end at their next batch boundary."""

    def __init__(self) -> None:
        self.is_set = False
        self._future: asyncio.Future[None] | None = None
        self._streams = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def future(self) -> asyncio.Future[None]:
        """One shared future that completes on drain (waiting on it costs no task)."""
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
            if self.is_set:
                self._future.set_result(None)
        return self._future

    def set(self) -> None:
        self.is_set = True
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    @property
    def open(self) -> int:
        """Publish streams open now."""
        return self._streams

    @contextlib.contextmanager
    def stream(self) -> Iterator[None]:
        """Count an open publish stream, so a drain can wait for its last ack."""
        self._streams += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._streams -= 1
            if not self._streams:
                self._idle.set()

    async def streams_ended(self, timeout: float) -> bool:
        """Wait until every publish stream has answered its last batch and ended."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return self._idle.is_set()


class LogIngestServicer(pb_grpc.LogIngestServicer):
    def __init__(self, ingest: Ingest, stopping: Stopping, admission: Admission) -> None:
        self._ingest = ingest
        self._stopping = stopping
        self._admission = admission  # open Publish streams, in all and per token
        self._ids = itertools.count(1)

    async def Publish(
        self,
        request_iterator: AsyncIterator[pb.PublishRequest],
        context: grpc.aio.ServicerContext[pb.PublishRequest, pb.PublishAck],
    ) -> AsyncIterator[pb.PublishAck]:
        principal = authenticated()
        if self._stopping.is_set:
            await abort(context, _DRAINING)
        stream = f"p{next(self._ids)}"
        try:
            await self._admission.admit(principal.owner, stream)
        except GatewayError as e:
            await abort(context, e)
        requests = aiter(request_iterator)
        try:
            with self._stopping.stream(), _Interrupt(self._stopping, principal) as interrupt:
                while (request := await interrupt.read(requests, context)) is not None:
                    yield await self._publish(principal, request, context)
        finally:
            self._admission.release(principal.owner, stream)

    async def _publish(
        self,
        principal: Principal,
        request: pb.PublishRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.PublishAck:
        if len(request.producer_id) > MAX_PRODUCER_ID:
            await abort(context, invalid(f"producer_id longer than {MAX_PRODUCER_ID} characters"))
        items = [entry_from_proto(e) for e in request.entries]
        key = None
        if request.producer_id:
            key = producer_key(principal.subject, request.producer_id, request.sequence)
        try:
            batch = await self._ingest.publish(principal, items, key)
        except GatewayError as e:
            await abort(context, e)
        return ack(request.sequence, batch)


class _Interrupt:
    """Ends a publish stream on drain or token expiry, at a batch boundary.

    The stream's own task reads the next request, with no task or wait set per request
    (they cost more than the rest of a one-entry batch): a drain or an expiry that comes
    while it waits cancels that read; one that comes mid-batch ends the stream after the
    batch's ack.
    """

    def __init__(self, stopping: Stopping, principal: Principal) -> None:
        self._stopping = stopping.future()
        self._expires_in = max(0.0, principal.expires_at - time.time())
        self._task = asyncio.current_task()
        self._reading = False
        self._reason: GatewayError | None = None
        self._expiry: asyncio.TimerHandle | None = None

    def __enter__(self) -> _Interrupt:
        self._stopping.add_done_callback(self._on_drain)
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(self._expires_in, self._stop, _EXPIRED)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.remove_done_callback(self._on_drain)
        if self._expiry is not None:
            self._expiry.cancel()

    def _on_drain(self, _: asyncio.Future[None]) -> None:
        self._stop(_DRAINING)

    def _stop(self, reason: GatewayError) -> None:
        if self._reason is None:
            self._reason = reason
            if self._reading and self._task is not None:
                self._task.cancel()

    async def read(
        self,
        requests: AsyncIterator[pb.PublishRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.PublishRequest | None:
        """The next request; None at the end of the stream; aborts on drain or expiry."""
        if self._reason is not None:
            await abort(context, self._reason)
        self._reading = True
        try:
            request: pb.PublishRequest | None = await anext(requests, None)
        except asyncio.CancelledError:
            if self._reason is None or self._task is None:
                raise  # cancelled from outside (the call ended): not ours to absorb
            self._task.uncancel()
            await abort(context, self._reason)
        finally:
            self._reading = False
        return request


_DRAINING = GatewayError(Code.UNAVAILABLE, "gateway is draining; reconnect")
_EXPIRED = GatewayError(Code.UNAUTHENTICATED, "token expired; reconnect")


class LogStreamServicer(pb_grpc.LogStreamServicer):
    def __init__(
        self,
        broker: Broker,
        hub: Hub,
        stopping: Stopping,
        queue_limit: int,
        write_timeout: float,
        max_tail: int,
        turns: asyncio.Semaphore | None = None,
    ) -> None:
        self._turns = turns or asyncio.Semaphore(READ_TURNS)  # shared with SSE (CatchUp)
        self._broker = broker
        self._hub = hub
        self._stopping = stopping
        self._queue_limit = queue_limit
        self._write_timeout = write_timeout
        self._max_tail = max_tail
        self._converted: OrderedDict[int, pb.StoredEntry] = OrderedDict()  # by seq

    async def Subscribe(
        self,
        request: pb.SubscribeRequest,
        context: grpc.aio.ServicerContext[pb.SubscribeRequest, pb.LogEvent],
    ) -> None:
        principal = authenticated()
        try:
            patterns = tuple(parse_pattern(c) for c in request.channels)
            if not patterns:
                raise invalid("name at least one channel")
            for p in patterns:
                principal.check_subscribe(p)
            floor = level_severity(request.min_level) if request.min_level else 0
            if request.tail > self._max_tail:
                raise invalid(f"tail must be from 0 to {self._max_tail}")
        except ValueError as e:
            await abort(context, invalid(str(e)))
        except GatewayError as e:
            await abort(context, e)
        sub = EventSubscription(
            self._hub.next_id(), patterns, floor, principal.owner, self._queue_limit
        )
        try:
            await self._hub.add(sub, expires_at=principal.expires_at)
        except GatewayError as e:
            await abort(context, e)
        try:
            cursor = decode_cursor(request.cursor)
            start = await catch_up(
                self._broker, patterns, cursor, request.tail, floor, PAGE, self._turns
            )
            try:
                page = await start.next_page()
                fresh = cursor is None and (page is None or not page.events)
                head = encode_cursor(self._broker.epoch, start.last) if fresh else ""
                ready = pb.Ready(connection=sub.id, channels=[p.text for p in patterns])
                await self._send(context, sub, pb.LogEvent(cursor=head, ready=ready))
                # Each page is read once gRPC's flow control has taken the last, and written
                # item by item: a replay of any size holds one page; live events wait in
                # `sub` meanwhile.
                while page is not None and not sub.done.done():
                    for item in page.in_order():
                        if sub.done.done():
                            break
                        await self._write(context, sub, item)
                    page = await start.next_page()
            finally:
                await start.aclose()
            self._hub.start(sub, start)
            async for item in _drain(sub):
                await self._write(context, sub, item)
            if (error := grpc_error(sub.done.result())) is not None:
                await abort(context, error)
        finally:
            self._hub.remove(sub)

    async def _write(
        self, context: grpc.aio.ServicerContext[Any, Any], sub: EventSubscription, item: Event | Gap
    ) -> None:
        cursor = encode_cursor(self._broker.epoch, item.seq) if item.seq else ""
        if isinstance(item, Gap):
            await self._send(context, sub, pb.LogEvent(cursor=cursor, gap=gap_to_proto(item)))
            return
        stored = self._converted.get(item.seq)
        if stored is None:  # once per event, however many subscribers it goes to
            stored = self._converted[item.seq] = entry_to_proto(item)
            if len(self._converted) > CONVERTED:
                self._converted.popitem(last=False)
        await self._send(context, sub, pb.LogEvent(cursor=cursor, entry=stored))

    async def _send(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        sub: EventSubscription,
        event: pb.LogEvent,
    ) -> None:
        """One message, bounded in time: a client that takes nothing for that long is a
        slow consumer (it resumes from its cursor)."""
        try:
            async with asyncio.timeout(self._write_timeout):  # no task per write, as wait_for
                await context.write(event)
        except TimeoutError:
            sub.finish(End.SLOW_CONSUMER)


async def _drain(sub: EventSubscription) -> AsyncIterator[Event | Gap]:
    """Queue items until the subscription is done.

    The read of the queue is cancelled however the wait ends, a client's cancel included:
    a task left pending is reported as an error when it is collected."""
    while not sub.done.done():
        get = asyncio.ensure_future(sub.queue.get())
        try:
            await asyncio.wait((get, sub.done), return_when="FIRST_COMPLETED")
        finally:
            if not get.done():
                get.cancel()
        if not get.done():  # the subscription ended first; its read is cancelled above
            return
        yield get.result()
