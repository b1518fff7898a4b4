"""Errors as HTTP answers: the one mapping from GatewayError to a response, and aiohttp's own
4xx refusals (no such path, a method the path does not take) in the same JSON shape."""

from __future__ import annotations

import math

from aiohttp import web

from gateway.api.http.auth import Handler
from gateway.api.http.facts import RequestFacts
from gateway.core.errors import Code, GatewayError


def error_response(error: GatewayError) -> web.Response:
    """The one mapping from GatewayError to an HTTP response."""
    body = {"error": {"code": error.code.slug, "message": error.message}}
    response = web.json_response(body, status=error.code.http_status)
    if error.code is Code.UNAUTHENTICATED:
        description = error.message.replace('"', "'")
        response.headers["WWW-Authenticate"] = (
            f'Bearer error="invalid_token", error_description="{description}"'
        )
    if error.code is Code.RATE_LIMITED or error.retry_after is not None:
        # A rate limit; or an issuer's keys being fetched again, or not trusted just now.
        response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after or 1)))
    return response


def route_error_response(error: web.HTTPException, request: RequestFacts) -> web.Response:
    """aiohttp's own refusals (no such route, a method the route does not take) in the
    same JSON shape as every other error, instead of its plain text."""
    slug = error.reason.lower().replace(" ", "_")  # not_found, method_not_allowed
    message = f"{error.reason}: {request.method} {request.path[:MAX_SHOWN_PATH]}"
    response = web.json_response({"error": {"code": slug, "message": message}}, status=error.status)
    if "Allow" in error.headers:
        response.headers["Allow"] = error.headers["Allow"]
    return response


MAX_SHOWN_PATH = 200


def error_answer(error: Exception, request: RequestFacts) -> web.Response | None:
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
