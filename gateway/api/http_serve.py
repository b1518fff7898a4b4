"""The one middleware every request to the gateway's HTTP port passes, in one layer: its
id and access line (http_access), its token as its route's TokenPolicy says (http_auth),
and whatever the handler raises turned into its JSON answer (http_auth.error_answer).

One layer rather than one per concern: aiohttp runs each middleware as a coroutine of its
own around the handler, paid on every request (docs/PERFORMANCE.md, single-entry POSTs).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.api.http_access import CLIENT_CLOSED, open_line
from gateway.api.http_auth import Handler, authorize, error_answer
from gateway.core.errors import GatewayError
from gateway.core.tokens import Verifier


def serving_middleware(verifier: Verifier) -> Middleware:
    @web.middleware
    async def serve(request: web.Request, handler: Handler) -> web.StreamResponse:
        line = open_line(request)
        status = CLIENT_CLOSED  # stays so if the handler is cancelled by a disconnect
        try:
            try:
                refusal = authorize(request, verifier)
                response = await handler(request) if refusal is None else refusal
            except (GatewayError, web.HTTPException) as e:
                answer = error_answer(e, request)
                if answer is None:
                    raise
                response = answer
            status = response.status
            if not response.prepared:
                response.headers["X-Request-Id"] = line.request_id
            return response
        except web.HTTPException as e:  # a redirect, or a 5xx of aiohttp's own
            status = e.status
            raise
        except Exception:
            status = 500
            raise
        finally:
            if not line.deferred:
                line.write(status)

    return serve
