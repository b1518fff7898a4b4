"""Authentication once per gRPC call: an interceptor verifies `authorization: Bearer <jwt>`
and hands the handler its Principal (`principal()`), or ends the call UNAUTHENTICATED
before any handler runs. Health and reflection need no token."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from gateway.api.grpc.handlers import rewrap
from gateway.core.errors import Code, GatewayError
from gateway.core.tokens import Principal, Verifier

log = logging.getLogger("logs_gateway.grpc")
OPEN_SERVICES = ("grpc.health.v1.", "grpc.reflection.")
_PRINCIPAL: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")


def principal() -> Principal:
    """The verified caller of the call being handled (set by Authenticator)."""
    return _PRINCIPAL.get()


def verify(verifier: Verifier, metadata: Any) -> Principal:
    """The Principal of call metadata `authorization: Bearer <jwt>`; raises GatewayError."""
    header = dict(metadata or ()).get("authorization", "")
    token = header[7:] if isinstance(header, str) and header[:7].lower() == "bearer " else None
    try:
        return verifier.verify(token)
    except GatewayError as e:
        log.info("grpc auth refused", extra={"reason": e.reason})
        raise


class Authenticator(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, verifier: Verifier) -> None:
        self._verifier = verifier

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        if handler is None or details.method.lstrip("/").startswith(OPEN_SERVICES):
            return handler
        try:
            caller: Principal | GatewayError = verify(self._verifier, details.invocation_metadata)
        except GatewayError as e:
            caller = e
        return rewrap(handler, _streaming(caller), _unary(caller))


def _streaming(caller: Principal | GatewayError) -> Callable[[Any], Any]:
    def wrap(behavior: Any) -> Callable[[Any, Any], AsyncIterator[Any]]:
        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            await admit(caller, context)
            async for response in behavior(request, context):
                yield response

        return stream

    return wrap


def _unary(caller: Principal | GatewayError) -> Callable[[Any], Any]:
    def wrap(behavior: Any) -> Callable[[Any, Any], Awaitable[Any]]:
        async def call(request: Any, context: Any) -> Any:
            await admit(caller, context)
            return await behavior(request, context)

        return call

    return wrap


async def admit(caller: Principal | GatewayError, context: Any) -> None:
    """Let the call through as `caller`, or end it UNAUTHENTICATED with why (UNAVAILABLE
    when the token's issuer cannot be checked now: the client may retry)."""
    if isinstance(caller, GatewayError):
        retry = caller.code is Code.UNAVAILABLE
        status = grpc.StatusCode.UNAVAILABLE if retry else grpc.StatusCode.UNAUTHENTICATED
        await context.abort(status, caller.message)
    else:
        _PRINCIPAL.set(caller)  # in the call's own task: its handler reads it
