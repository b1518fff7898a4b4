"""`logs-gateway proxy --upstream URL`: the proxy routes in front of a remote gateway.

A separate, stateless process: it serves only the proxy routes (and /health), relaying each
stream to the upstream gateway, which verifies the tokens (see gateway/api/proxy_upstream).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from gateway.api.http.cors import Cors, parse_origins
from gateway.api.http.errors import errors_middleware
from gateway.api.http.proxy_upstream import UpstreamProxy
from gateway.app import config as cfg
from gateway.app import logs

log = logging.getLogger("logs_gateway")
PROXY_SETTINGS = ("host", "http_port", "cors_origins", "grace_seconds", "log_level", "log_format")


def upstream_url(text: str) -> str:
    """argparse type: a gateway base URL, without credentials in it (they would be logged)."""
    url = urlparse(text)
    if url.scheme not in ("http", "https") or not url.hostname or url.username:
        raise argparse.ArgumentTypeError(f"{text!r} is not a URL like http://HOST:PORT")
    return text


def add_parser(verbs: Any) -> None:
    """The `proxy` verb, with the settings it uses."""
    parser = verbs.add_parser("proxy", help="run the proxy routes in front of a remote gateway")
    parser.add_argument(
        "--upstream",
        required=True,
        type=upstream_url,
        metavar="URL",
        help="base URL of the gateway to relay to, e.g. http://127.0.0.1:3002",
    )
    cfg.add_arguments(parser, PROXY_SETTINGS)


def run(args: argparse.Namespace) -> int:
    config = cfg.load(args)
    logs.setup(config.log_level, config.log_format)
    asyncio.run(serve_proxy(config, args.upstream))
    return 0


class ProxyServer:
    """Owns the proxy's HTTP server; `stop` ends every relay and waits within the grace."""

    def __init__(self, config: cfg.Config, upstream: str) -> None:
        self.config = config
        self.upstream = upstream
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[errors_middleware])
        UpstreamProxy(self.upstream).add_to(app)
        app.router.add_get("/health", _health)
        Cors(parse_origins(self.config.cors_origins)).install(app)
        return app

    async def start(self) -> int:
        runner = web.AppRunner(
            self.app(),
            handler_cancellation=True,
            shutdown_timeout=self.config.grace_seconds,
            access_log=None,
        )
        await runner.setup()
        await web.TCPSite(runner, self.config.host, self.config.http_port).start()
        self._runner = runner
        port = int(runner.addresses[0][1])
        log.info("logs-gateway proxy started", extra={"http_port": port, "upstream": self.upstream})
        return port

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def serve_proxy(config: cfg.Config, upstream: str) -> None:
    """Run until SIGTERM or SIGINT."""
    server = ProxyServer(config, upstream)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
