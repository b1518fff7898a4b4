"""The baseline of a single-entry POST: a bare aiohttp app that parses the same JSON body
and answers JSON, and does nothing else (`python -m bench.bare_http PORT`).

It runs as the gateway's HTTP side does (aiohttp's AppRunner, no access log, the default
asyncio loop), so CPU per POST against it says what the gateway adds to aiohttp itself.
"""

from __future__ import annotations

import asyncio
import signal
import sys

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


async def serve(port: int) -> None:
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
    asyncio.run(serve(int(sys.argv[1])))
