"""A gRPC server interceptor: an id for each call's log lines, open calls per method for
/metrics, one log line when a call ends (method, status, duration; never metadata), and
INVALID_ARGUMENT for a request message that does not parse."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from gateway.api import request_ids
from gateway.api.grpc.handlers import rewrap

log = logging.getLogger("logs_gateway.grpc")
# Probes and tools: a successful call is logged at debug only.
QUIET_SERVICES = ("grpc.health.v1.", "grpc.reflection.")


class CallLog(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps every async handler; `open` counts calls in progress by method name."""

    def __init__(self) -> None:
        self.open: Counter[str] = Counter()

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method.rsplit(".", 1)[-1]  # "/pkg.Service/Method" -> "Service/Method"
        metadata = dict(details.invocation_metadata or ())
        return rewrap(
            handler,
            lambda behavior: self._wrap_stream(behavior, details.method, method, metadata),
            lambda behavior: self._wrap_call(behavior, details.method, method, metadata),
            _lenient(handler.request_deserializer),
        )

    def _wrap_stream(
        self, behavior: Any, full: str, method: str, metadata: dict[str, Any]
    ) -> Callable[[Any, Any], AsyncIterator[Any]]:
        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            with self._tracked(full, method, metadata, context):
                async for response in behavior(await _valid(request, context), context):
                    yield response

        return stream

    def _wrap_call(
        self, behavior: Any, full: str, method: str, metadata: dict[str, Any]
    ) -> Callable[[Any, Any], Awaitable[Any]]:
        async def call(request: Any, context: Any) -> Any:
            with self._tracked(full, method, metadata, context):
                return await behavior(await _valid(request, context), context)

        return call

    @contextlib.contextmanager
    def _tracked(
        self, full: str, method: str, metadata: dict[str, Any], context: Any
    ) -> Iterator[None]:
        """Around one call: its request id and open count, and its log line at the end."""
        incoming = metadata.get("x-request-id")
        request_ids.adopt(incoming if isinstance(incoming, str) else None)
        self.open[method] += 1
        started = time.monotonic()
        outcome = "CANCELLED"  # stays so when the client goes away mid-call
        try:
            yield
            outcome = "OK"
        except Exception:
            outcome = "UNKNOWN"
            raise
        finally:
            self.open[method] -= 1
            self._end(full, method, context, outcome, started)

    def _end(self, full: str, method: str, context: Any, outcome: str, started: float) -> None:
        code = _status_name(context) or outcome  # an abort sets the code before raising
        quiet = full.lstrip("/").startswith(QUIET_SERVICES) and code == "OK"
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "grpc call",
            extra={
                "method": method,
                "code": code,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            },
        )


def _status_name(context: Any) -> str | None:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if isinstance(code, int):
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), None)
    return None


class Malformed:
    """A request message that did not parse. grpc would answer a deserializer's exception
    with UNKNOWN and log an error with a traceback, for every bad message anyone sends
    (before the token is looked at); the wrappers refuse it with INVALID_ARGUMENT instead."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as e:
            return Malformed(f"request message does not parse: {e}")

    return parse


async def _valid(request: Any, context: Any) -> Any:
    """The request (or a client stream's iterator of them); a Malformed one ends the call."""
    if isinstance(request, Malformed):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
    if hasattr(request, "__aiter__"):
        return _valid_stream(request, context)
    return request


async def _valid_stream(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
    async for request in requests:
        yield await _valid(request, context)
