"""One connection while the HTTP port's front (http.front) serves it: llhttp fed a request's
parts at a time, the publish routes answered in order, any other request handed to aiohttp
with every byte of it and after it."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from time import monotonic
from typing import TYPE_CHECKING, cast

import httptools
from multidict import CIMultiDict

from gateway.api.http.access import CLIENT_CLOSED, AccessLine
from gateway.api.http.answer import OkAnswer
from gateway.api.http.facts import FactsHandler, Reply
from gateway.api.http.front_limits import HeadRefused, head_refusal, refusal_bytes
from gateway.api.http.front_request import FrontBody, FrontRequest, encoded, encoded_ok
from gateway.api.http.serve import REQUEST_ID

if TYPE_CHECKING:
    from gateway.api.http.front import Front

log = logging.getLogger("logs_gateway.http")
PIPELINE = 16  # requests read ahead of their answers on one connection
BODY_WINDOW = 1 << 18  # body bytes received ahead of the route reading them
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
INTERNAL = refusal_bytes(500, "internal server error")
TOO_MANY = refusal_bytes(503, "too many connections to this gateway; retry")
HEAD, LENGTH, CHUNKED = 0, 1, 2  # what the next piece fed to llhttp holds
# Headers whose other values (or a second line) send a request to aiohttp: what they ask
# is not what the front does (aiohttp answers them as it always has).
UNUSUAL = (
    ("Content-Encoding", frozenset({"gzip", "deflate", "identity"})),
    ("Transfer-Encoding", frozenset({"chunked"})),
    ("Expect", frozenset({"100-continue"})),
)


class Connection(asyncio.Protocol):
    """One connection while the front serves it."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.limits = front.limits
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.deadline = monotonic() + self.limits.header_timeout
        self.buffer = b""  # received; fed to llhttp up to `at`
        self.at = 0
        self.head = bytearray()  # the head being parsed, as received (for a hand-off)
        self.state = HEAD
        self.left = 0  # body bytes left to feed (LENGTH)
        self.url = b""
        self.fields: list[tuple[str, str]] = []  # the head's, as they come
        self.parsing: FrontRequest | None = None  # the request whose body is coming
        self.queue: deque[tuple[FrontRequest, FactsHandler, bool]] = deque()
        self.serving: asyncio.Task[None] | None = None
        self.refusal: bytes | None = None  # the answer that ends the connection
        self.hand_off = False
        self.eof = False
        self.paused = False
        self.writable = True
        self.out: list[bytes] = []  # answers not yet written

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's is not an asyncio.Transport subclass, but is one).
        self.transport = cast(asyncio.Transport, transport)
        if not self.front.admit(self):
            self.refusal = TOO_MANY
            self.send_refusal()

    def data_received(self, data: bytes) -> None:
        # Most reads start at a request and hold whole ones: no copy of them then.
        self.buffer = self.buffer[self.at :] + data if self.at < len(self.buffer) else data
        self.at = 0
        self.advance()

    def eof_received(self) -> bool:
        self.eof = True
        # With nothing left to answer asyncio closes the transport; else answer, then close.
        return bool(self.queue)

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        self.advance()

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.front.connections:  # admitted, and never handed to aiohttp
            self.front.closed()
        self.front.forget(self)
        if self.serving is not None:
            self.serving.cancel()  # as aiohttp's handler_cancellation
        self.transport = None

    # -- llhttp callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.deadline = monotonic() + self.limits.header_timeout
        self.url = b""
        self.fields = []

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.max_line:
            raise HeadRefused(414, "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        fields = self.fields
        fields.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))
        if len(fields) > self.limits.max_headers or len(value) > self.limits.max_field:
            self.limits.check_header(len(fields), len(value))

    def on_headers_complete(self) -> None:
        path, _, query = self.url.partition(b"?")
        headers = CIMultiDict(self.fields)
        handler = self.fast_handler(path, headers)
        if handler is None:
            self.hand_off = True
            return
        encoding = headers.get("Content-Encoding", "identity").lower()
        body = FrontBody(
            None if encoding == "identity" else encoding,
            None if "Expect" not in headers else self.send_continue,
        )
        request = FrontRequest("POST", path.decode(), query.decode("latin-1"), headers, body)
        self.head.clear()
        self.parsing = request
        self.deadline = monotonic() + self.limits.idle_timeout
        if "Transfer-Encoding" in headers:
            self.state = CHUNKED
        else:
            self.state, self.left = LENGTH, request.content_length or 0
        self.queue.append((request, handler, self.parser.should_keep_alive()))
        if self.serving is None:
            self.serving = self.loop.create_task(self.work())

    def on_body(self, piece: bytes) -> None:
        if self.parsing is not None and not self.parsing.content.dropped:
            self.parsing.content.feed(piece)
            self.deadline = monotonic() + self.limits.idle_timeout

    def on_message_complete(self) -> None:
        if self.parsing is not None:
            self.parsing.content.finish()
        self.parsing = None
        self.state = HEAD

    def fast_handler(self, path: bytes, headers: CIMultiDict[str]) -> FactsHandler | None:
        """The route the front serves this request with; None hands it to aiohttp: any other
        path or method, HTTP/1.0, an upgrade, an Expect or a coding the front does not do."""
        parser = self.parser
        handler = self.front.routes.get(path)
        if handler is None or parser.get_method() != b"POST" or parser.should_upgrade():
            return None
        if parser.get_http_version() != "1.1":
            return None
        for name, only in UNUSUAL:
            if name in headers:
                values = headers.getall(name)
                if len(values) > 1 or values[0].lower() not in only:
                    return None
        return handler

    # -- feeding llhttp --------------------------------------------------------------------

    def advance(self) -> None:
        """Feed llhttp what was received, a request's part at a time, as far as the
        connection may read ahead; then hand off, or pause reading."""
        while self.at < len(self.buffer) and not self.blocked():
            piece = self.next_piece()
            if len(self.head) > self.limits.max_head:
                self.refuse(431, f"request head larger than {self.limits.max_head} bytes")
                return
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserUpgrade:
                pass  # an upgrade is always handed off (fast_handler)
            except httptools.HttpParserError as e:
                self.refuse(*head_refusal(e))
                return
        if self.hand_off and self.serving is None and self.refusal is None:
            self.give_to_aiohttp()
            return
        self.pause_if(self.at < len(self.buffer) and self.blocked())

    def next_piece(self) -> bytes:
        buffer, at = self.buffer, self.at
        if self.state == LENGTH:
            end = min(at + self.left, len(buffer))
            self.left -= end - at
        else:  # a head, or a chunked body: up to and with the next blank line
            found = buffer.find(b"\r\n\r\n", at)
            end = len(buffer) if found < 0 else found + 4
        piece = buffer[at:end]
        if self.state == HEAD:
            self.head += piece
        self.at = end
        return piece

    def blocked(self) -> bool:
        if self.hand_off or self.refusal is not None:
            return True
        # At most PIPELINE requests ahead; the body of the last one read is still read (a
        # client with PIPELINE in flight would otherwise stop and start the reads each time).
        if len(self.queue) >= PIPELINE and self.state == HEAD:
            return True
        if not self.writable:  # the client does not read its answers
            return True
        return self.parsing is not None and self.parsing.content.buffered > BODY_WINDOW

    def pause_if(self, pause: bool) -> None:
        if self.transport is None or pause == self.paused:
            return
        self.paused = pause
        if pause:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def refuse(self, status: int, message: str) -> None:
        """End the connection with this refusal, after the answers of the requests before;
        for a body broken midway, its route's own answer (a 400 naming the problem), or
        none when it was answered already."""
        self.limits.refused[str(status)] += 1
        body = None if self.parsing is None else self.parsing.content
        if body is None:
            self.refusal = refusal_bytes(status, message)
        else:
            body.fail(message)
            self.refusal = b""
        self.buffer, self.at = b"", 0
        if not self.queue:
            self.send_refusal()

    def send_refusal(self) -> None:
        self.flush()
        if self.transport is not None and self.refusal is not None:
            if self.refusal:
                self.transport.write(self.refusal)
            self.transport.close()

    def give_to_aiohttp(self) -> None:
        """From here on the connection is aiohttp's: its protocol gets every byte of the
        request the front did not serve, and what came after it."""
        transport = self.transport
        if transport is None:
            return
        self.flush()
        self.front.forget(self)
        data = bytes(self.head) + self.buffer[self.at :]
        self.head.clear()
        self.buffer, self.at = b"", 0
        protocol = self.front.handed()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if data:
            protocol.data_received(data)
        if self.eof:
            protocol.eof_received()
        if self.paused:
            transport.resume_reading()
        self.transport = None

    # -- answering -------------------------------------------------------------------------

    async def work(self) -> None:
        """Answer the queued requests in order, while there are any. Answers ready in the
        same turn of the loop (pipelined publishes) go out in one write."""
        while self.queue:
            request, handler, keep_alive = self.queue[0]
            close = await self.serve(request, handler, keep_alive)
            self.queue.popleft()
            if close or self.transport is None:
                self.flush()
                if self.transport is not None:
                    self.transport.close()
                return
            if not self.queue and self.parsing is None:
                self.deadline = monotonic() + self.limits.idle_timeout
            self.advance()  # what was held back while the answers were owed
        self.serving = None
        self.flush()
        self.advance()  # a hand-off or a refusal waiting for the answers

    async def serve(self, request: FrontRequest, handler: FactsHandler, keep_alive: bool) -> bool:
        """Answer `request` through the pass; whether the connection ends after it."""
        line = AccessLine(request.method, request.path, request.headers.get(REQUEST_ID))
        status = CLIENT_CLOSED
        try:
            response = await self.front.serving.answer(request, handler)
            close = self.ends_after(request.content, keep_alive)
            status, data = self.encode(request, response, line.request_id, close)
            self.send(data)
            return close
        except Exception:
            status = 500
            log.exception("http request failed", extra={"path": request.path})
            self.send(INTERNAL)
            return True
        finally:
            if line.wanted:
                line.write(status)

    def encode(
        self, request: FrontRequest, response: Reply, request_id: str, close: bool
    ) -> tuple[int, bytes]:
        """The status and bytes of the answer: an OkAnswer written from its own fields,
        unless CORS headers join it; anything else from its web.Response."""
        date, cors = self.front.clock.date(), self.front.cors
        if isinstance(response, OkAnswer):
            if not cors.enabled:
                return 200, encoded_ok(response, request_id, date, close)
            response = response.response()
        response.headers[REQUEST_ID] = request_id
        if cors.enabled:
            cors.mark(request, response.headers)
        return response.status, encoded(response, date, close)

    def ends_after(self, body: FrontBody, keep_alive: bool) -> bool:
        """Whether the connection ends after this answer."""
        if not body.complete:
            # The rest is parsed and dropped, never inflated, for `linger` seconds at most
            # (as aiohttp's lingering): its client reads the answer, not a reset.
            body.discard()
            self.deadline = monotonic() + self.limits.linger
        # A compressed body not read whole ends the connection, never inflated (http.bodies);
        # so does one its client holds back until `100 Continue` (RFC 9110 10.1.1).
        close = not keep_alive or self.eof or self.front.closing or body.awaited
        close = close or (self.refusal is not None and len(self.queue) == 1)
        return close or (not body.complete and body.total_compressed_bytes is not None)

    def send(self, data: bytes) -> None:
        """Queue `data` to go out at the end of this turn of the loop, with what else is
        answered in it."""
        if not self.out:
            self.loop.call_soon(self.flush)
        self.out.append(data)

    def flush(self) -> None:
        if self.out and self.transport is not None:
            self.transport.write(b"".join(self.out) if len(self.out) > 1 else self.out[0])
        self.out.clear()

    def send_continue(self) -> None:
        if self.transport is not None:
            self.flush()
            self.transport.write(CONTINUE)

    # -- ending ----------------------------------------------------------------------------

    def expire(self) -> None:
        """Past the deadline: a head sent too slowly, a body stalled, or idle too long (not
        while a route works on the answer, the client waiting)."""
        if self.transport is None or (self.serving is not None and self.parsing is None):
            return
        body = None if self.parsing is None else self.parsing.content
        waited = "head" if self.head else "idle" if body is None else "body"
        waited = "linger" if body is not None and body.dropped else waited
        self.limits.refused[f"{waited}_timeout"] += 1
        self.transport.close()

    def close_when_idle(self) -> None:
        if self.serving is None and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
