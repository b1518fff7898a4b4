"""GatewayError as a gRPC status: its code, and a call ended with it (a retry hint as
`retry-after-ms`)."""

from __future__ import annotations

import math
from typing import Any, NoReturn

import grpc

from gateway.core.errors import GatewayError

_STATUS = {code.value[0]: code for code in grpc.StatusCode}


def grpc_status(error: GatewayError) -> grpc.StatusCode:
    return _STATUS[error.code.grpc_code]


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: GatewayError) -> NoReturn:
    """End the call with the error's status; a retry hint travels as `retry-after-ms`."""
    if error.retry_after is not None:
        hint = str(math.ceil(error.retry_after * 1000))
        context.set_trailing_metadata((("retry-after-ms", hint),))
    await context.abort(grpc_status(error), error.message)
    raise AssertionError("unreachable: abort raises")
