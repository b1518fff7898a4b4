"""The one pass every request to the gateway's HTTP port gets, put around each route's
handler: its id and access line (http.access), a CORS preflight's answer (http.cors), its
token as its route's TokenPolicy says (http.auth), whatever the handler raises turned
into its JSON answer (http.auth.error_answer), and a compressed body left unread closing its
connection (http.bodies).

Around each handler rather than as a middleware: any middleware makes aiohttp run a layer
of its own on every request (`_fix_request_current_app`) besides ours, and look up the
chain built for the route (docs/PERFORMANCE.md, single-entry POSTs). What a middleware
gave for free is done here: every path answers through the pass (a method a path does
not take: its JSON 405; any other path: the JSON 404), and the app does not start with a
route the pass does not serve, which would skip authentication.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from aiohttp import hdrs, web

from gateway.api.http.access import CLIENT_CLOSED, AccessLine
from gateway.api.http.auth import Check, Handler, authorizer, error_answer
from gateway.api.http.bodies import close_inflating
from gateway.api.http.cors import Cors
from gateway.core.errors import GatewayError
from gateway.core.tokens import Verifier


class Serving:
    def __init__(self, verifier: Verifier, cors: Cors) -> None:
        self._verifier = verifier
        self._cors = cors
        self._served: set[Handler] = set()

    def add_routes(self, app: web.Application, routes: Iterable[web.RouteDef]) -> None:
        """Register `routes` served through the pass, then the 405 and 404 answers, and the
        CORS headers of responses; at start-up, refuse to serve a route of `app` added any
        other way."""
        for route in routes:
            if isinstance(route.handler, type):  # a class-based view: no handler to wrap
                raise TypeError(f"{route.path}: views are not served through http.serve")
            served = self.serve(route.handler)
            web.RouteDef(route.method, route.path, served, route.kwargs).register(app.router)
        for resource in app.router.resources():
            methods = {r.method for r in resource}
            if isinstance(resource, web.Resource) and hdrs.METH_ANY not in methods:
                resource.add_route(hdrs.METH_ANY, self.serve(_not_allowed(methods)))
        everything = _Everything()
        app.router.register_resource(everything)
        everything.add_route(hdrs.METH_ANY, self.serve(_not_found))
        app.on_startup.append(self._check)
        self._cors.mark_responses(app)

    def serve(self, handler: Handler) -> Handler:
        """`handler` inside the pass. It keeps the handler's attributes (its token_policy)."""
        check = self._checks(handler)

        async def serve(request: web.Request) -> web.StreamResponse:
            line = AccessLine(request)
            status = CLIENT_CLOSED  # stays so if the handler is cancelled by a disconnect
            try:
                try:
                    early = None if check is None else check(request)
                    response = await handler(request) if early is None else early
                except (GatewayError, web.HTTPException) as e:
                    answer = error_answer(e, request)
                    if answer is None:
                        raise
                    response = answer
                status = response.status
                if not response.prepared:
                    response.headers["X-Request-Id"] = line.request_id
                    if not request.content.is_eof():  # a body left unread
                        await close_inflating(request, response)
                return response
            except web.HTTPException as e:  # a redirect, or a 5xx of aiohttp's own
                status = e.status
                raise
            except Exception:
                status = 500
                raise
            finally:
                if line.wanted and not line.deferred:
                    line.write(status)

        functools.update_wrapper(serve, handler)
        self._served.add(serve)
        return serve

    def _checks(self, handler: Handler) -> Check | None:
        """What runs before `handler`: a preflight's answer (when origins are listed), then
        the route's token check; None when neither applies."""
        authorize = authorizer(handler, self._verifier)
        if not self._cors.enabled:
            return authorize
        preflight = self._cors.preflight_answer

        def check(request: web.Request) -> web.StreamResponse | None:
            answer = preflight(request)
            if answer is None and authorize is not None:
                return authorize(request)
            return answer

        return check

    async def _check(self, app: web.Application) -> None:
        for route in app.router.routes():
            if route.handler not in self._served:
                resource = route.resource.canonical if route.resource else "?"
                raise RuntimeError(
                    f"{route.method} {resource} is not served through http.serve: "
                    "it would skip authentication, the request id and the access line"
                )


class _Everything(web.PlainResource):
    """The resource of every path no other resource takes: the router tries it last (it
    walks a path up to "/"), and it matches what no route pattern can, which all start
    with "/" (`OPTIONS *`)."""

    def __init__(self) -> None:
        super().__init__("/")

    def _match(self, path: str) -> dict[str, str] | None:
        return {}


def _not_allowed(methods: set[str]) -> Handler:
    """The answer of a path to a method it does not take, as aiohttp's router gives it."""

    async def not_allowed(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMethodNotAllowed(request.method, methods)

    return not_allowed


async def _not_found(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotFound
