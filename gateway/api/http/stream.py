"""GET /api/logs/stream: Server-Sent Events for one or more channels (DESIGN §6)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from gateway.api.http.access import defer_access_log
from gateway.api.http.auth import TokenPolicy, principal_of, requires_token
from gateway.api.http.sse_socket import DetachedStream, TransportSink, detach
from gateway.core import sse
from gateway.core.broker import PAGE, Broker, Page, PageSize
from gateway.core.catch_up import READ_TURNS, CatchUp, catch_up
from gateway.core.channels import Pattern, parse_pattern
from gateway.core.cursor import Cursor, decode_cursor, encode_cursor
from gateway.core.endings import End
from gateway.core.errors import invalid
from gateway.core.events import level_severity
from gateway.core.hub import Hub
from gateway.core.subscription import StreamSubscription
from gateway.core.tally import ByteCount
from gateway.core.tokens import Principal

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


SETUPS = 4  # streams finding their history and answering at once; the others wait


@dataclass(frozen=True, slots=True)
class StreamSettings:
    retry_ms: int
    max_channels: int
    max_buffer: int
    write_timeout: float  # a client that takes no replay chunk for this long is dropped
    max_tail: int  # the history bound: `tail` asks for at most what a channel keeps


def parse_channels(text: str, max_channels: int) -> tuple[Pattern, ...]:
    names = list(dict.fromkeys(c.strip() for c in text.split(",") if c.strip()))
    if not names:
        raise invalid("query parameter 'channels' must name at least one channel")
    if len(names) > max_channels:
        raise invalid(f"{len(names)} channels requested; at most {max_channels} per connection")
    return tuple(parse_pattern(n) for n in names)


def parse_level(text: str | None) -> int:
    if not text:
        return 0
    try:
        return level_severity(text)
    except ValueError as e:
        raise invalid(str(e)) from None


def parse_tail(text: str | None, most: int) -> int:
    """`tail=N`: how many recent entries to send first (0, the default: live only)."""
    if text is None or text == "":
        return 0
    # ASCII digits only, and few: str.isdigit takes "²", and int() refuses 4,300 digits.
    if not (text.isascii() and text.isdigit()) or len(text) > 9 or int(text) > most:
        raise invalid(f"query parameter 'tail' must be a whole number from 0 to {most}")
    return int(text)


def request_cursor(request: web.Request) -> Cursor | None:
    """Where to resume: `last_event_id` in the query (must be valid), else the
    `Last-Event-ID` header (a malformed one starts live rather than failing the browser)."""
    explicit = request.query.get("last_event_id")
    if explicit:
        cursor = decode_cursor(explicit)
        if cursor is None:
            raise invalid(f"last_event_id {explicit[:80]!r} is not a cursor this gateway issued")
        return cursor
    return decode_cursor(request.headers.get("Last-Event-ID"))


class StreamHandler:
    def __init__(
        self,
        broker: Broker,
        hub: Hub,
        settings: StreamSettings,
        sent: ByteCount | None = None,
        turns: asyncio.Semaphore | None = None,
    ) -> None:
        self._broker = broker
        self._hub = hub
        self._settings = settings
        self._setups = asyncio.Semaphore(SETUPS)
        self._turns = turns or asyncio.Semaphore(READ_TURNS)  # shared with gRPC (CatchUp)
        self.sent = sent or ByteCount()  # bytes the fan-out wrote, for /metrics

    @requires_token(TokenPolicy(allow_cookie=True))
    async def handle(self, request: web.Request) -> web.StreamResponse:
        principal = principal_of(request)
        patterns = parse_channels(request.query.get("channels", ""), self._settings.max_channels)
        return await self.serve(
            request, principal, patterns, parse_level(request.query.get("level"))
        )

    async def serve(
        self,
        request: web.Request,
        principal: Principal,
        patterns: tuple[Pattern, ...],
        min_severity: int,
    ) -> web.StreamResponse:
        """Stream `patterns` to this request; the proxy routes call this too."""
        for pattern in patterns:
            principal.check_subscribe(pattern)
        cursor = request_cursor(request)
        tail = parse_tail(request.query.get("tail"), self._settings.max_tail)
        transport = request.transport
        if transport is None:
            raise asyncio.CancelledError  # the client is already gone
        sink = TransportSink(transport, request.version >= (1, 1), self.sent)
        sub = StreamSubscription(
            self._hub.next_id(),
            patterns,
            min_severity,
            principal.owner,
            sink,
            self._settings.max_buffer,
        )
        await self._hub.add(sub, expires_at=principal.expires_at)
        try:
            response = await self._start(request, sub, cursor, tail)
        except BaseException:
            self._hub.remove(sub)
            raise
        if sub.done.done():  # dropped while replaying: too slow, or its live events piled up
            transport.abort()
            self._hub.remove(sub)
            return response
        # From here the hub feeds the stream, and the connection is the stream's.
        detach(request, DetachedStream(self._hub, sub, sink, defer_access_log(request)))
        return response

    async def _start(
        self, request: web.Request, sub: StreamSubscription, cursor: Cursor | None, tail: int
    ) -> web.StreamResponse:
        """Send the headers, `ready` and what the client missed (or the `tail` most recent
        entries); live events follow."""
        # A reconnect storm (a drain, a network blip) brings streams by the hundred in one
        # loop turn: a few at a time find their history and answer, so no turn runs them all.
        # A replay is read a page at a time, each as the client has taken the one before,
        # so a connection holds its send buffer and one page whatever the history.
        size = PageSize(bytes=min(PAGE.bytes, self._settings.max_buffer))
        async with self._setups:
            start = await catch_up(
                self._broker, sub.patterns, cursor, tail, sub.min_severity, size, self._turns
            )
            epoch = self._broker.epoch

            def encode(page: Page) -> tuple[bool, bytes]:
                return bool(page.events), sse.page_frames(epoch.encode(), page, sub.min_severity)

            try:
                first = await start.next_as(encode)
                response = web.StreamResponse(headers=SSE_HEADERS)
                response.force_close()
                await response.prepare(request)
            except BaseException:
                await start.aclose()
                raise
            ready = {"connection": sub.id, "channels": [p.text for p in sub.patterns]}
            # A live-only start gets the head as its cursor, so a reconnect misses nothing;
            # after a tail the last entry's id is the cursor (ids never go back on a stream).
            fresh = cursor is None and (first is None or not first[0])
            ready_id = encode_cursor(epoch, start.last) if fresh else None
            await response.write(sse.frame("ready", ready, ready_id, self._settings.retry_ms))
            await asyncio.sleep(0)  # the next stream's turn comes after other work's
        try:
            if await self._send_pages(response, sub, start, first, encode):
                self._hub.start(sub, start)
        finally:
            await start.aclose()
        return response

    async def _send_pages(
        self,
        response: web.StreamResponse,
        sub: StreamSubscription,
        start: CatchUp,
        page: tuple[bool, bytes] | None,
        encode: Callable[[Page], tuple[bool, bytes]],
    ) -> bool:
        """Write `page` (its frames) and every later one, each read (and encoded, in the
        same turn) once the client has taken the last; False if the stream ended meanwhile
        (it was dropped, or too slow)."""
        while page is not None:
            if sub.done.done():
                return False
            if frames := page[1]:
                try:  # aiohttp's write waits for the socket to drain past its small buffer
                    await asyncio.wait_for(response.write(frames), self._settings.write_timeout)
                except TimeoutError:
                    sub.finish(End.SLOW_CONSUMER)
                    return False
            page = await start.next_as(encode)
        return True
