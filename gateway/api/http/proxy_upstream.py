"""The proxy routes as a standalone streaming reverse proxy in front of a remote gateway.

This proxy holds no keys: it maps the route to a channel, forwards the caller's token
(`Authorization`, or only the `logs_gateway_token` cookie) and `Last-Event-ID` to the
upstream `/api/logs/stream`, and the upstream gateway verifies every request. No other
request header travels, so a client-sent `X-User-Id` cannot reach anything. Upstream
answers are passed back as they are: JSON errors with their status, and the event stream
byte for byte (heartbeats, `error` and `shutdown` events included). When the upstream goes
away the stream is ended cleanly, so the browser reconnects with its Last-Event-ID.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import aiohttp
from aiohttp import web

from gateway.api.http.auth import COOKIE
from gateway.api.http.proxy import PATH, find_route, route_channel
from gateway.api.http.stream import SSE_HEADERS
from gateway.core.errors import Code, GatewayError

log = logging.getLogger("logs_gateway.proxy")

# An upstream silent for this long (no event, no `: ping`) counts as lost; the browser then
# reconnects through us. Five default heartbeats.
UPSTREAM_IDLE_SECONDS = 75.0
UPSTREAM_CONNECT_SECONDS = 5.0
PASSED_QUERY = ("level", "last_event_id", "tail")
PASSED_BACK = ("Content-Type", "WWW-Authenticate", "Retry-After")
MAX_ERROR_BODY = 64 * 1024


def upstream_headers(headers: Mapping[str, str], cookies: Mapping[str, str]) -> dict[str, str]:
    """The request headers worth forwarding: the token and the resume point, nothing else."""
    out = {"Accept": "text/event-stream"}
    if "Authorization" in headers:
        out["Authorization"] = headers["Authorization"]
    elif COOKIE in cookies:
        out["Cookie"] = f"{COOKIE}={cookies[COOKIE]}"
    if "Last-Event-ID" in headers:
        out["Last-Event-ID"] = headers["Last-Event-ID"]
    return out


def upstream_query(channel: str, query: Mapping[str, str]) -> dict[str, str]:
    return {"channels": channel} | {k: query[k] for k in PASSED_QUERY if k in query}


def unavailable(message: str) -> GatewayError:
    return GatewayError(Code.UNAVAILABLE, message, reason="upstream")


class UpstreamProxy:
    """Relays the proxy routes to `upstream` (a gateway's base URL)."""

    def __init__(self, upstream: str, idle_seconds: float = UPSTREAM_IDLE_SECONDS) -> None:
        self._url = upstream.rstrip("/") + "/api/logs/stream"
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=UPSTREAM_CONNECT_SECONDS, sock_read=idle_seconds
        )
        self._session: aiohttp.ClientSession | None = None

    def add_to(self, app: web.Application) -> None:
        app.router.add_get(PATH, self.handle)
        app.on_startup.append(self._open)
        app.on_shutdown.append(self._close)

    async def _open(self, app: web.Application) -> None:
        # No cookie jar: one user's upstream cookies must never reach another user's request.
        # No connection limit: every stream holds one upstream connection for its lifetime.
        self._session = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            connector=aiohttp.TCPConnector(limit=0, force_close=True),
            timeout=self._timeout,
            auto_decompress=False,
        )

    async def _close(self, app: web.Application) -> None:
        """Ends every relay (their upstream reads fail), so browsers reconnect elsewhere."""
        if self._session is not None:
            await self._session.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        channel = route_channel(find_route(request.match_info["app"]), request.query)
        assert self._session is not None, "UpstreamProxy used before app startup"
        try:
            upstream = await self._session.get(
                self._url,
                params=upstream_query(channel, request.query),
                headers=upstream_headers(request.headers, request.cookies),
            )
        except (aiohttp.ClientError, TimeoutError) as e:
            log.warning("upstream unreachable", extra={"error": type(e).__name__})
            raise unavailable("the upstream gateway is unreachable; retry shortly") from None
        async with upstream:
            if upstream.status != 200:
                return await _pass_back(upstream)
            if upstream.content_type != "text/event-stream":
                raise unavailable("the upstream did not answer with an event stream")
            return await _relay(request, upstream)


async def _pass_back(upstream: aiohttp.ClientResponse) -> web.Response:
    """An upstream refusal, passed back with its status, body and auth headers."""
    body = await upstream.content.read(MAX_ERROR_BODY)
    headers = {h: upstream.headers[h] for h in PASSED_BACK if h in upstream.headers}
    return web.Response(status=upstream.status, body=body, headers=headers)


async def _relay(request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
    """Copy the event stream as it arrives; end it cleanly whichever side goes away."""
    response = web.StreamResponse(headers=SSE_HEADERS)
    response.force_close()
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
    except (aiohttp.ClientError, ConnectionResetError, TimeoutError) as e:
        # aiohttp ends the returned response with the last chunk if the browser is still there.
        log.info("proxied stream ended", extra={"error": type(e).__name__})
    return response
