"""CORS for pages on other origins (LOGS_GATEWAY_CORS_ORIGINS): an explicit allow-list.

A listed origin may read responses with credentials (the cookie travels with EventSource's
`withCredentials`); any other origin gets no CORS headers at all, so its browser keeps the
response from it. The answer names the one requesting origin, never `*`. Headers are added
when a response is prepared, so streaming responses and error responses get them too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping

from aiohttp import web

from gateway.api.http.facts import RequestFacts
from gateway.core.errors import denied

ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, Last-Event-ID"
PREFLIGHT_MAX_AGE = "600"


def parse_origins(text: str) -> frozenset[str]:
    """The origins of the (already validated) comma-separated setting."""
    return frozenset(o.strip() for o in text.split(",") if o.strip())


class Cors:
    def __init__(self, origins: frozenset[str]) -> None:
        self._origins = origins

    @property
    def enabled(self) -> bool:
        return bool(self._origins)

    def install(self, app: web.Application) -> None:
        """Answer preflights (a middleware) and mark responses; does nothing when no origin
        is listed. The gateway's own app answers them in http.serve instead."""
        if self._origins:
            app.middlewares.append(self.preflight)
        self.mark_responses(app)

    def mark_responses(self, app: web.Application) -> None:
        if self._origins:
            app.on_response_prepare.append(self.add_headers)

    @web.middleware
    async def preflight(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        answer = self.preflight_answer(request)
        return await handler(request) if answer is None else answer

    def preflight_answer(self, request: RequestFacts) -> web.Response | None:
        """The answer to a CORS preflight, or None for any other request; raises
        GatewayError for an origin not listed."""
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        origin = request.headers.get("Origin", "")
        if origin not in self._origins:
            raise denied(f"origin {origin[:200]!r} is not in LOGS_GATEWAY_CORS_ORIGINS")
        headers = {
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
        }
        return web.Response(status=204, headers=headers)

    async def add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        self.mark(request, response.headers)

    def mark(self, request: RequestFacts, headers: MutableMapping[str, str]) -> None:
        """Add the CORS headers of the answer to `request` (origins listed only)."""
        # Caches must keep answers for different origins apart.
        vary = headers.get("Vary")
        headers["Vary"] = f"{vary}, Origin" if vary else "Origin"
        origin = request.headers.get("Origin")
        if origin in self._origins:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
