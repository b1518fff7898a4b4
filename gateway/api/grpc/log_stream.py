"""LogStream.Subscribe: a replay of history, then live events, until the client goes, the
gateway drains or the token expires."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import grpc
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

from gateway.api.convert import entry_to_proto, gap_to_proto
from gateway.api.grpc.auth import principal as authenticated
from gateway.api.grpc.history import history_page
from gateway.api.grpc.status import abort
from gateway.api.stopping import Stopping
from gateway.core.broker import Broker, Gap, PageSize
from gateway.core.catch_up import READ_TURNS, catch_up
from gateway.core.channels import parse_pattern
from gateway.core.cursor import decode_cursor, encode_cursor
from gateway.core.endings import End, grpc_error
from gateway.core.errors import GatewayError, invalid
from gateway.core.events import Event, level_severity
from gateway.core.hub import Hub
from gateway.core.subscription import EventSubscription

log = logging.getLogger("logs_gateway.grpc")

CONVERTED = 4096  # stored entries kept converted for the next subscriber of the same event
PAGE = PageSize()  # what a Subscribe reads of history at a time (it holds one page)


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
        max_channels: int = 32,
    ) -> None:
        self._turns = turns or asyncio.Semaphore(READ_TURNS)  # shared with SSE (CatchUp)
        self._max_channels = max_channels
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

    async def History(
        self,
        request: pb.HistoryRequest,
        context: grpc.aio.ServicerContext[pb.HistoryRequest, pb.HistoryPage],
    ) -> pb.HistoryPage:
        try:
            return await history_page(
                self._broker, authenticated(), request, self._max_channels, self._turns
            )
        except ValueError as e:
            await abort(context, invalid(str(e)))
        except GatewayError as e:
            await abort(context, e)

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
