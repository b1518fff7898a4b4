"""The one pass every request to the gateway's HTTP port gets, as an aiohttp middleware
and, for the routes the front serves itself (http.front), as `Serving.answer`:
its id and access line (http.access), a CORS preflight's answer (http.cors), its token as
its route's TokenPolicy says (http.auth), whatever the handler (or aiohttp's router: no
such path, a method the path does not take) raises turned into its JSON answer
(http.errors.error_answer), and a compressed body left unread closing its connection
(http.bodies).

The app does not start with a route added outside `add_routes`: its token check would be
unknown to the pass, and the route would skip authentication.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar, cast

from aiohttp import web

from gateway.api.http.access import ACCESS_LINE, CLIENT_CLOSED, AccessLine
from gateway.api.http.answer import OkAnswer
from gateway.api.http.auth import Check, Handler, authorizer
from gateway.api.http.bodies import close_inflating
from gateway.api.http.cors import Cors
from gateway.api.http.errors import error_answer
from gateway.api.http.facts import Reply, RequestFacts
from gateway.core.errors import GatewayError
from gateway.core.tokens import Verifier

REQUEST_ID = "X-Request-Id"
R = TypeVar("R", bound=RequestFacts)


class Serving:
    def __init__(self, verifier: Verifier, cors: Cors) -> None:
        self._verifier = verifier
        self._cors = cors
        # What runs before each route's handler, by handler; a path no route takes (its
        # 404 or 405) gets only the preflight's answer.
        self._checks: dict[Callable[..., object], Check | None] = {}
        self._unrouted = self._checks_for(None)

    def add_routes(self, app: web.Application, routes: Iterable[web.RouteDef]) -> None:
        """Register `routes` served through the pass, and the CORS headers of responses; at
        start-up, refuse to serve a route of `app` added any other way."""
        for route in routes:
            if isinstance(route.handler, type):  # a class-based view: no handler to check
                raise TypeError(f"{route.path}: views are not served through http.serve")
            self._checks[route.handler] = self._checks_for(route.handler)
            route.register(app.router)
        app.middlewares.append(self._middleware)
        app.on_startup.append(self._check_routes)
        self._cors.mark_responses(app)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # The path as the router matched it (decoded but for %2F and %25), which it has
        # already computed, rather than `request.path`, decoded again for the line alone.
        line = AccessLine(
            request.method, request.rel_url.path_safe, request.headers.get(REQUEST_ID)
        )
        request[ACCESS_LINE] = line
        status = CLIENT_CLOSED  # stays so if the handler is cancelled by a disconnect
        try:
            # The pass is the innermost middleware: `handler` is the route's own, or for
            # a path no route takes, aiohttp's raising its 404 or 405.
            response = await self.answer(request, handler)
            if isinstance(response, OkAnswer):
                response = response.response()
            status = response.status
            if not response.prepared:
                response.headers[REQUEST_ID] = line.request_id
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

    async def answer(self, request: R, handler: Callable[[R], Awaitable[Reply]]) -> Reply:
        """`handler`'s answer to `request` after the route's checks (a preflight's answer,
        its token), or the JSON answer to what they raised (http.errors.error_answer);
        what that does not answer propagates. Both servers' one pass: aiohttp's requests
        (the middleware above) and the front's (http.front)."""
        check = self._checks.get(handler, self._unrouted)
        try:
            early = None if check is None else check(request)
            return await handler(request) if early is None else early
        except (GatewayError, web.HTTPException) as e:
            answer = error_answer(e, request)
            if answer is None:
                raise
            return answer

    def _checks_for(self, handler: Handler | None) -> Check | None:
        """What runs before `handler`: a preflight's answer (when origins are listed), then
        the route's token check; None when neither applies."""
        authorize = None if handler is None else authorizer(handler, self._verifier)
        if not self._cors.enabled:
            return authorize
        preflight = self._cors.preflight_answer

        def check(request: RequestFacts) -> web.StreamResponse | None:
            answer = preflight(request)
            if answer is None and authorize is not None:
                return authorize(request)
            return answer

        return check

    async def _check_routes(self, app: web.Application) -> None:
        if app.middlewares[-1] != self._middleware:
            # Only as the innermost middleware is the pass handed the route's own handler,
            # which names the route's token check; any other place would skip it.
            raise RuntimeError("http.serve's middleware must be the app's last")
        for route in app.router.routes():
            if route.handler not in self._checks:
                resource = route.resource.canonical if route.resource else "?"
                raise RuntimeError(
                    f"{route.method} {resource} is not served through http.serve: "
                    "it would skip authentication"
                )


def post(path: str, handler: Callable[[RequestFacts], Awaitable[Reply]]) -> web.RouteDef:
    """A POST route whose handler may answer an OkAnswer: aiohttp sends the web.Response the
    pass makes of it (the pass serves every route: `Serving._check_routes`)."""
    return web.post(path, cast(Handler, handler))
