"""An SSE stream's socket once it is set up: bytes written straight to the transport as
HTTP/1.1 chunks (TransportSink), and the connection taken over from aiohttp (detach,
DetachedStream), so an idle stream holds only its subscription, sink and transport."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from gateway.api.http.access import CLIENT_CLOSED
from gateway.core.hub import Hub
from gateway.core.subscription import StreamSubscription
from gateway.core.tally import ByteCount


class TransportSink:
    """Writes straight to the connection, framing each write as one HTTP/1.1 chunk.

    The response headers (and chunked encoding) are set up by aiohttp in `prepare`; after
    that, fan-out bytes skip aiohttp's writer so a write costs one transport call.
    """

    def __init__(self, transport: asyncio.Transport, chunked: bool, sent: ByteCount) -> None:
        self._transport = transport
        self._chunked = chunked
        self._sent = sent
        self._written = 0

    def write(self, data: bytes) -> None:
        if self._transport.is_closing():
            return
        self._sent.total += len(data)
        if self._chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        self._written += len(data)  # as the transport counts it, framing included
        self._transport.write(data)

    def pending_bytes(self) -> int:
        return self._transport.get_write_buffer_size()

    def sent_bytes(self) -> int:
        return self._written - self._transport.get_write_buffer_size()

    def abort(self) -> None:
        self._transport.abort()

    def end(self) -> None:
        """End the response (the last chunk) and close once what is queued is sent."""
        if not self._transport.is_closing():
            if self._chunked:
                self._transport.write(b"0\r\n\r\n")
            self._transport.close()


class DetachedStream(asyncio.Protocol):
    """The connection of a stream that is set up, once aiohttp has let go of it.

    After the response headers and `ready`, a stream needs only its subscription, fed by
    the hub, and its socket. Keeping aiohttp's request alive for the stream's life (the
    parsed request and headers, the parser, the writer, a handler task and a connection
    task) cost 11 of the 15.5 kB of Python heap an idle stream took; handed over, a stream
    is its subscription, its sink, this object and the transport.
    """

    def __init__(
        self, hub: Hub, sub: StreamSubscription, sink: TransportSink, log: Callable[[int], None]
    ) -> None:
        self._hub = hub
        self._sub = sub
        self._log = log
        # It ends with the subscription (drain, expiry, slow consumer) or with the client.
        sub.done.add_done_callback(lambda _: sink.end())

    def data_received(self, data: bytes) -> None:
        """An SSE client sends nothing after its request; anything more is ignored (the
        connection closes when the stream ends, so no second request is ever read)."""

    def eof_received(self) -> bool:
        return False  # the client closed its side: close ours too

    def connection_lost(self, exc: Exception | None) -> None:
        self._log(200 if self._sub.done.done() else CLIENT_CLOSED)
        self._hub.remove(self._sub)


def detach(request: web.Request, protocol: asyncio.Protocol) -> None:
    """Hand the request's connection to `protocol`. aiohttp then drops the request as it
    does when a client disconnects: the handler's return meets a closed writer, quietly."""
    transport = request.transport
    assert transport is not None
    transport.set_protocol(protocol)
    handler = request.protocol
    handler.transport = None  # what aiohttp no longer holds, it cannot close
    handler.connection_lost(None)
