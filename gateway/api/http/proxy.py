"""The app-facing proxy routes (DESIGN §7): `/api/dapadmin/{app}/sse/logs/stream?...`.

Each app names its channel through query ids; the table below is the whole mapping, so a
new app is one more row. The ids are checked one by one (a bad one gets a 400 naming the
parameter) before they are put into a channel name. Who the caller is comes only from the
verified token: headers such as `X-User-Id` are never read.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from gateway.api.http.auth import TokenPolicy, principal_of, requires_token
from gateway.api.http.stream import StreamHandler, parse_level
from gateway.core.channels import is_segment, parse_pattern
from gateway.core.errors import Code, GatewayError, invalid

PATH = "/api/dapadmin/{app}/sse/logs/stream"


@dataclass(frozen=True, slots=True)
class Route:
    """One app: the channel `template` is filled from the query ids it names."""

    app: str
    template: str

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(name for _, name, _, _ in string.Formatter().parse(self.template) if name)


ROUTES = (
    Route("l5-etl", "logs:etl:{workspace_id}:{workflow_id}"),
    Route("faas", "logs:faas:{workspace_id}:{function_id}"),
    Route("analytics", "logs:analytics:{workspace_id}"),
)


def find_route(app: str, routes: tuple[Route, ...] = ROUTES) -> Route:
    for route in routes:
        if route.app == app:
            return route
    known = ", ".join(r.app for r in routes)
    raise GatewayError(Code.NOT_FOUND, f"unknown app {app[:64]!r}; known apps: {known}")


def query_segment(query: Mapping[str, str], name: str) -> str:
    """Query parameter `name`, which must be usable as one channel segment; else a 400."""
    value = query.get(name, "")
    if not value:
        raise invalid(f"query parameter {name!r} is required")
    if not is_segment(value):
        raise invalid(f"query parameter {name!r} must be 1-64 characters of A-Z a-z 0-9 _ . -")
    return value


def route_channel(route: Route, query: Mapping[str, str]) -> str:
    """The channel `route` names for these query ids; 400 naming the first bad parameter."""
    return route.template.format(**{name: query_segment(query, name) for name in route.params})


class ProxyHandler:
    """Serves the proxy routes from this process's hub, through the SSE stream handler."""

    def __init__(self, stream: StreamHandler) -> None:
        self._stream = stream

    def routes(self) -> list[web.RouteDef]:
        return [web.get(PATH, self.handle, allow_head=False)]  # a stream: no HEAD

    @requires_token(TokenPolicy(allow_cookie=True))
    async def handle(self, request: web.Request) -> web.StreamResponse:
        principal = principal_of(request)
        channel = route_channel(find_route(request.match_info["app"]), request.query)
        level = parse_level(request.query.get("level"))
        return await self._stream.serve(request, principal, (parse_pattern(channel),), level)
