"""HTTP side of credentials: where a token is read from, authentication once per request
(a route says which tokens it takes; its `authorizer` checks before the handler runs and
hands it the Principal). Errors become responses in http/errors.py."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from gateway.api.http.facts import RequestFacts
from gateway.core.errors import GatewayError
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
    refusal: Callable[[RequestFacts, GatewayError], web.StreamResponse] | None = None


def requires_token(policy: TokenPolicy) -> Callable[[H], H]:
    """Mark a route's handler: http.serve verifies its token first (authorizer)."""

    def mark(handler: H) -> H:
        setattr(handler, "token_policy", policy)  # noqa: B010 (a function's own attribute)
        return handler

    return mark


def principal_of(request: RequestFacts) -> Principal:
    """The verified caller of a route marked with requires_token."""
    return request[PRINCIPAL]


Check = Callable[[RequestFacts], web.StreamResponse | None]


def authorizer(handler: Handler, verifier: Verifier) -> Check | None:
    """The token check of a handler marked with requires_token, as its TokenPolicy says;
    None for an open route (health, the page, login). The check hands the handler its
    Principal (principal_of) and answers None, or raises GatewayError for a refused token,
    or answers with the route's own `refusal`.

    Built once per route (http.serve), so a request pays for its check and not for finding
    its route's policy."""
    policy = getattr(handler, "token_policy", None)
    if not isinstance(policy, TokenPolicy):
        return None
    allow_cookie, admin, refusal = policy.allow_cookie, policy.admin, policy.refusal

    def authorize(request: RequestFacts) -> web.StreamResponse | None:
        try:
            try:
                principal = verifier.verify(bearer_token(request, allow_cookie))
            except GatewayError as e:
                log.info("http auth refused", extra={"reason": e.reason, "path": request.path})
                raise
            if admin:
                principal.require_admin()
        except GatewayError as e:
            if refusal is None:
                raise
            return refusal(request, e)
        request[PRINCIPAL] = principal
        return None

    return authorize


def bearer_token(request: RequestFacts, allow_cookie: bool) -> str | None:
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
