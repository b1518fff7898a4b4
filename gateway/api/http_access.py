"""One log line per HTTP request (or SSE stream, when it ends), with its request id.

aiohttp's own access log stays off: it prints the query string, which may hold a token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.api import request_ids

log = logging.getLogger("logs_gateway.http")
# Probes and scrapes arrive every few seconds; a successful one is logged at debug only.
QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})
MAX_LOGGED_PATH = 200
CLIENT_CLOSED = 499  # nginx's code for "the client went away before the answer"


@web.middleware
async def access_log_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Give the request an id (`X-Request-Id` in and out) and log it when it ends."""
    rid = request_ids.adopt(request.headers.get("X-Request-Id"))
    started = time.monotonic()
    status = CLIENT_CLOSED  # stays so if the handler is cancelled by a disconnect
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers["X-Request-Id"] = rid
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    except Exception:
        status = 500
        raise
    finally:
        quiet = request.path in QUIET_PATHS and status < 400
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "http request",
            extra={
                "method": request.method,
                "path": request.path[:MAX_LOGGED_PATH],
                "status": status,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            },
        )
