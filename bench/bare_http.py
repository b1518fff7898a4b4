"""The baseline of a single-entry POST: a bare aiohttp app that parses the same JSON body
and answers JSON, and does nothing else (`python -m bench.bare_http PORT`).

It runs as the gateway's HTTP side did before its front (aiohttp's AppRunner, no access log,
the default asyncio loop), so CPU per POST against it says what the gateway costs against
aiohttp itself (issue 29's target: at most half). `--llhttp` serves the same POST with a
bare asyncio protocol on httptools instead, as the front parses (pipelined, keep-alive):
the floor under the front, what a POST costs with no gateway work at all.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import cast

import httptools
import orjson
from aiohttp import web

ANSWER = {"results": [{"offset": 0, "cursor": "e-0"}]}


async def publish(request: web.Request) -> web.Response:
    doc = orjson.loads(await request.read())
    if not isinstance(doc, dict) or not isinstance(doc.get("message"), str):
        raise web.HTTPBadRequest
    return web.json_response(ANSWER, dumps=lambda o: orjson.dumps(o).decode())


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


class Bare(asyncio.Protocol):
    """One connection of the llhttp floor: parse, load the JSON, answer; no checks."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.body: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's is not an asyncio.Transport subclass, but is one).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        doc = orjson.loads(b"".join(self.body))
        self.body.clear()
        ok = isinstance(doc, dict) and isinstance(doc.get("message"), str)
        assert self.transport is not None
        self.transport.write(ANSWERED if ok else REFUSED)


BODY = orjson.dumps(ANSWER)
ANSWERED = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)
REFUSED = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"


async def serve(port: int, llhttp: bool) -> None:
    if llhttp:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Bare, "127.0.0.1", port, backlog=4096)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.close()
        return
    app = web.Application()
    app.router.add_post("/", publish)
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), "--llhttp" in sys.argv[2:]))
