"""The browser side of the gateway's routes: proxy routes, the Logs page, dev sign-in."""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.api.http.dev_login import DevLogin
from gateway.api.http.page import Page
from gateway.api.http.proxy import ProxyHandler
from gateway.api.http.stream import StreamHandler
from gateway.app import credentials
from gateway.app.config import Config, ConfigError

log = logging.getLogger("logs_gateway")


def browser_routes(config: Config, stream: StreamHandler) -> list[web.RouteDef]:
    """Proxy routes, the Logs page and, in dev mode, sign-in (CORS: http.serve)."""
    routes = [*ProxyHandler(stream).routes(), *Page().routes()]
    if config.dev:
        routes += _dev_login(config)
    return routes


def _dev_login(config: Config) -> list[web.RouteDef]:
    """Dev sign-in needs a signing key; with only public keys configured it stays off."""
    try:
        signer = credentials.signer(config)
    except ConfigError as e:
        log.warning("dev sign-in disabled", extra={"reason": str(e)})
        return []
    return DevLogin(signer).routes()
