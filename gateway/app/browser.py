"""The browser side of the gateway, wired: proxy routes, the Logs page, CORS, dev sign-in."""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.api.dev_login import DevLogin
from gateway.api.http_cors import Cors, parse_origins
from gateway.api.http_page import Page
from gateway.api.http_stream import StreamHandler
from gateway.api.proxy import ProxyHandler
from gateway.app import credentials
from gateway.app.config import Config, ConfigError

log = logging.getLogger("logs_gateway")


def add_browser_side(app: web.Application, config: Config, stream: StreamHandler) -> None:
    ProxyHandler(stream).add_to(app)
    Page().add_to(app)
    if config.dev:
        _add_dev_login(app, config)
    Cors(parse_origins(config.cors_origins)).install(app)


def _add_dev_login(app: web.Application, config: Config) -> None:
    """Dev sign-in needs a signing key; with only public keys configured it stays off."""
    try:
        signer = credentials.signer(config)
    except ConfigError as e:
        log.warning("dev sign-in disabled", extra={"reason": str(e)})
        return
    DevLogin(signer).add_to(app)
