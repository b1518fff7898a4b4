"""HTTP side of credentials: where a token is read from, authentication once per request
(a route says which tokens it takes; `authorize` checks before the handler runs and hands
it the Principal), and errors turned into responses."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from gateway.core.errors import Code, GatewayError
from gateway.core.tokens import Principal, Verifier

COOKIE = "logs_gateway_token"
PRINCIPAL = web.RequestKey("principal", Principal)  # a request's verified caller
log = logging.getLogger("logs_gateway.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """Which tokens a route takes. `refusal` answers a refused token in the route's own
    encoding (OTLP's Status); without it the JSON error of every other answer."""

    allow_cookie: bool = False  # GET streams only: EventSource cannot set a header
    admin: bool = False
    refusal: Callable[[web.Request, GatewayError], web.StreamResponse] | None = None


def requires_token(policy: TokenPolicy) -> Callable[[H], H]:
    """Mark a route's handler: auth_middleware verifies its token first."""

    def mark(handler: H) -> H:
        setattr(handler, "token_policy", policy)  # noqa: B010 (a function's own attribute)
        return handler

    return mark


def principal_of(request: web.Request) -> Principal:
    """The verified caller of a route marked with requires_token."""
    return request[PRINCIPAL]


def authorize(request: web.Request, verifier: Verifier) -> web.StreamResponse | None:
    """Check the token of a route marked with requires_token, as its TokenPolicy says, and
    hand the handler its Principal (principal_of). A refusal raises GatewayError, or is
    answered by the route's own `refusal`; None: the handler may run."""
    policy = getattr(request.match_info.handler, "token_policy", None)
    if not isinstance(policy, TokenPolicy):
        return None  # an open route (health, the page, login)
    try:
        principal = authenticate(request, verifier, allow_cookie=policy.allow_cookie)
        if policy.admin:
            principal.require_admin()
    except GatewayError as e:
        if policy.refusal is None:
            raise
        return policy.refusal(request, e)
    request[PRINCIPAL] = principal
    return None


def bearer_token(request: web.Request, *, allow_cookie: bool) -> str | None:
    """The request's token: `Authorization: Bearer`, else (for GET streams) the cookie.

    Publishing and admin calls take only the header, so a cookie a browser sends on its
    own can never be used to write (no CSRF).
    """
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    if allow_cookie:
        return request.cookies.get(COOKIE)
    return None


def authenticate(request: web.Request, verifier: Verifier, *, allow_cookie: bool) -> Principal:
    try:
        return verifier.verify(bearer_token(request, allow_cookie=allow_cookie))
    except GatewayError as e:
        log.info("http auth refused", extra={"reason": e.reason, "path": request.path})
        raise


def error_response(error: GatewayError) -> web.Response:
    """The one mapping from GatewayError to an HTTP response."""
    body = {"error": {"code": error.code.slug, "message": error.message}}
    response = web.json_response(body, status=error.code.http_status)
    if error.code is Code.UNAUTHENTICATED:
        description = error.message.replace('"', "'")
        response.headers["WWW-Authenticate"] = (
            f'Bearer error="invalid_token", error_description="{description}"'
        )
    if error.code is Code.RATE_LIMITED:
        response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after or 1)))
    return response


def route_error_response(error: web.HTTPException, request: web.Request) -> web.Response:
    """aiohttp's own refusals (no such route, a method the route does not take) in the
    same JSON shape as every other error, instead of its plain text."""
    slug = error.reason.lower().replace(" ", "_")  # not_found, method_not_allowed
    message = f"{error.reason}: {request.method} {request.path[:MAX_SHOWN_PATH]}"
    response = web.json_response({"error": {"code": slug, "message": message}}, status=error.status)
    if "Allow" in error.headers:
        response.headers["Allow"] = error.headers["Allow"]
    return response


MAX_SHOWN_PATH = 200


def error_answer(error: Exception, request: web.Request) -> web.Response | None:
    """The JSON answer to what a handler raised: a GatewayError's, or one of aiohttp's own
    4xx refusals in the same shape; None for anything else, which propagates."""
    if isinstance(error, GatewayError):
        return error_response(error)
    if isinstance(error, web.HTTPException) and 400 <= error.status < 500:
        return route_error_response(error, request)
    return None


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """error_answer for an app that needs nothing else of a request (the app proxy)."""
    try:
        return await handler(request)
    except (GatewayError, web.HTTPException) as e:
        answer = error_answer(e, request)
        if answer is None:
            raise
        return answer
