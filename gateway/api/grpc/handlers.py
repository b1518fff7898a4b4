"""Rebuilding a grpc.aio method handler around its behaviour: what each server interceptor
(gateway/api/grpc/access.py, gateway/api/grpc/auth.py) does to every call."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import grpc

_FACTORIES = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}

Wrap = Callable[[Any], Any]  # behaviour -> the behaviour that runs instead


def rewrap(
    handler: Any,
    wrap_stream: Wrap,
    wrap_call: Wrap,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> Any:
    """`handler` with its behaviour wrapped: by `wrap_stream` if it is an async generator
    (it yields its responses), by `wrap_call` if a coroutine (it returns its response, or
    writes them with context.write). A synchronous handler is left as it is."""
    attr, factory = _FACTORIES[handler.request_streaming, handler.response_streaming]
    behavior = getattr(handler, attr)
    if inspect.isasyncgenfunction(behavior):
        wrapped = wrap_stream(behavior)
    elif inspect.iscoroutinefunction(behavior):
        wrapped = wrap_call(behavior)
    else:
        return handler
    return factory(
        wrapped,
        request_deserializer=request_deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
