"""One log line per HTTP request (or SSE stream, when it ends), with its request id.

aiohttp's own access log stays off: it prints the query string, which may hold a token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp import web

from gateway.api import request_ids

log = logging.getLogger("logs_gateway.http")
# Probes and scrapes arrive every few seconds; a successful one is logged at debug only.
QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})
MAX_LOGGED_PATH = 200
CLIENT_CLOSED = 499  # nginx's code for "the client went away before the answer"


class AccessLine:
    """The access line of one request, written when the request ends (http.serve). Opening
    it gives the request its id: `X-Request-Id` in, well-formed, or a new one."""

    __slots__ = ("deferred", "method", "path", "request_id", "started", "wanted")

    def __init__(self, method: str, path: str, request_id: str | None) -> None:
        """`request_id` is the request's `X-Request-Id` header, if it sent one."""
        self.method = method
        self.path = path
        self.request_id = request_ids.adopt(request_id)
        self.deferred = False  # left to the stream that outlives the handler
        # Whether any line is read at all (a quiet path's is DEBUG, others INFO): with the
        # logger above INFO none is, and the request need not read the clock for it, nor
        # its end call `write`.
        self.wanted = log.isEnabledFor(logging.INFO)
        self.started = time.monotonic() if self.wanted else 0.0

    def write(self, status: int) -> None:
        level = logging.DEBUG if status < 400 and self.path in QUIET_PATHS else logging.INFO
        if not log.isEnabledFor(level):  # nothing to build for a line nobody reads
            return
        token = request_ids.current.set(self.request_id)
        try:
            log.log(
                level,
                "http request",
                extra={
                    "method": self.method,
                    "path": self.path[:MAX_LOGGED_PATH],
                    "status": status,
                    "duration_ms": round((time.monotonic() - self.started) * 1000, 1),
                },
            )
        finally:
            request_ids.current.reset(token)


ACCESS_LINE = web.RequestKey("access_line", AccessLine)  # set by http.serve


def defer_access_log(request: web.Request) -> Callable[[int], None]:
    """For a response that outlives its handler (an SSE stream handed to the hub): the
    request's line is left to the function returned, to be called with the status when
    the stream ends."""
    line: AccessLine | None = request.get(ACCESS_LINE)
    if line is None or not line.wanted:  # not served through http.serve, or not logged
        return lambda status: None
    line.deferred = True
    return line.write
