"""The HTTP port's front: llhttp (httptools) parses every connection's requests, and serves
`POST /api/logs/publish` and `POST /v1/logs` itself; any other request hands its connection
to aiohttp, through aiohttp's public low-level server (`web.Server`), with every byte read.

Why: aiohttp costs about 50 us of CPU per request, most of a single-entry publish; llhttp
and a small protocol cost a fraction of it (docs/PERFORMANCE.md, the front). Both servers
serve through one pass (http.serve: access line, request id, CORS, token, JSON errors) and
one handler per route (the handlers read http.facts.RequestFacts, which both requests are).

The front feeds llhttp a connection's bytes so that every request ends where a piece fed
ends (a head at its blank line, a body at its length, a chunked body at a blank line), so
it always knows where a request starts: at a hand-off, aiohttp gets the request whole.
llhttp stays strict (no lenient flag): it refuses every smuggling form (Content-Length
with Transfer-Encoding, two lengths, a bad chunk size, obs-fold, a bare LF, ...) with 400.
The heads of requests are bounded (http.front_limits); on each connection
(http.front_connection) pipelined requests are answered in order and at most 16 are read
ahead, a body is read no faster than its route reads it, and a connection slow to send a
head or idle past its time is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from time import monotonic

from aiohttp import web

from gateway.api.http.cors import Cors
from gateway.api.http.facts import FactsHandler
from gateway.api.http.front_connection import Connection
from gateway.api.http.front_limits import FrontLimits
from gateway.api.http.front_request import Clock
from gateway.api.http.serve import Serving


class Counted(asyncio.Protocol):
    """A protocol that calls `closed` when its connection closes, and otherwise is `inner`
    (aiohttp's: its own count of connections is not a public, constant-time figure)."""

    def __init__(self, inner: asyncio.Protocol, closed: Callable[[], None]) -> None:
        self.inner = inner
        self.closed = closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self.inner.connection_lost(exc)
        finally:
            self.closed()


class Front:
    """The protocol factory of the HTTP port, and the connections it serves."""

    def __init__(
        self,
        serving: Serving,
        routes: Mapping[str, FactsHandler],
        aiohttp: web.Server,
        cors: Cors,
        limits: FrontLimits,
    ) -> None:
        self.serving = serving
        self.routes = {path.encode(): handler for path, handler in routes.items()}
        self.aiohttp = aiohttp
        self.cors = cors
        self.limits = limits
        self.clock = Clock()
        self.connections: set[Connection] = set()
        self.closing = False
        self._emptied = asyncio.Event()
        self._listener: asyncio.Server | None = None

    def __call__(self) -> Connection:
        return Connection(self)

    async def listen(self, host: str, port: int, reuse_port: bool) -> int:
        """Listen on the HTTP port; the port listened on."""
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            self, host, port, backlog=4096, reuse_port=reuse_port
        )
        return int(self._listener.sockets[0].getsockname()[1])

    def admit(self, connection: Connection) -> bool:
        """Count a new connection in, or refuse it past --max-http-connections: the bound
        holds whichever server serves the connection (aiohttp's too, see `handed`)."""
        if self.limits.open >= self.limits.max_connections:
            self.limits.refused["connection_limit"] += 1
            return False
        self.limits.open += 1
        self.connections.add(connection)
        return True

    def forget(self, connection: Connection) -> None:
        """The front serves `connection` no more: it closed, or went to aiohttp."""
        self.connections.discard(connection)
        if self.closing and not self.connections:
            self._emptied.set()

    def closed(self) -> None:
        self.limits.open -= 1

    def handed(self) -> asyncio.Protocol:
        """aiohttp's protocol for a connection handed to it, counted until it closes."""
        return Counted(self.aiohttp(), self.closed)

    def expire(self) -> None:
        """Close the connections past their deadline (a head sent too slowly, idle).
        Deadlines are on `time.monotonic`, the clock of asyncio's loop, read without a
        Python call (three a POST otherwise)."""
        now = monotonic()
        for connection in [c for c in self.connections if c.deadline < now]:
            connection.expire()

    async def run_timeouts(self) -> None:
        while True:
            await asyncio.sleep(self.limits.tick)
            self.expire()

    async def stop(self, grace: float) -> None:
        """Close idle connections now, the others after their answer; cut what is left
        after `grace`."""
        self.closing = True
        if self._listener is not None:
            self._listener.close()
        for connection in list(self.connections):
            connection.close_when_idle()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._emptied.wait(), grace)
        for connection in list(self.connections):
            connection.abort()
