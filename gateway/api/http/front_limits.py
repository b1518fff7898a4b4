"""The front's bounds on a request's head and on slow or idle connections, and its answer to
a head it refuses: llhttp's refusals (malformed, smuggling forms) and its own bounds."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import httptools
import orjson

from gateway.core.tokens import MAX_TOKEN_BYTES

REASONS = {400: "Bad Request", 408: "Request Timeout", 414: "URI Too Long"}
REASONS[431] = "Request Header Fields Too Large"
REASONS[500] = "Internal Server Error"
REASONS[503] = "Service Unavailable"


class HeadRefused(Exception):
    """A head past one of the front's bounds (raised in an llhttp callback)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class FrontLimits:
    """As aiohttp's parser bounds heads (a line, a field, 128 headers), with a total; how
    long a connection may take to send a head, or stay idle between requests; and how many
    connections the port holds. The settings' values are passed in (app.config owns them)."""

    header_timeout: float  # --http-header-timeout
    idle_timeout: float  # --http-idle-timeout
    max_connections: int  # --max-http-connections: open on the port, whichever server serves
    linger: float = 10.0  # an answered request's body still coming is drained this long
    max_line: int = 8190  # the request target
    max_field: int = 2 * MAX_TOKEN_BYTES  # every token reaches the verifier (server.py)
    max_headers: int = 128
    max_head: int = 64 * 1024  # the whole head
    tick: float = 1.0  # how often deadlines are looked at
    refused: Counter[str] = field(default_factory=Counter)  # connections ended, by reason
    open: int = 0  # connections to the port now, the front's and those handed to aiohttp

    def check_header(self, count: int, value_size: int) -> None:
        if count > self.max_headers:
            raise HeadRefused(431, f"more than {self.max_headers} header fields")
        if value_size > self.max_field:
            raise HeadRefused(431, f"a header field longer than {self.max_field} bytes")


def head_refusal(error: httptools.HttpParserError) -> tuple[int, str]:
    """The status and message for what llhttp refused, or a bound a callback raised."""
    cause = error.__context__
    if isinstance(cause, HeadRefused):
        return cause.status, cause.message
    return 400, f"malformed HTTP request: {error}"


def refusal_bytes(status: int, message: str) -> bytes:
    """A refusal that ends the connection, in the JSON shape of every error."""
    slug = REASONS[status].lower().replace(" ", "_")
    body = orjson.dumps({"error": {"code": slug, "message": message}})
    head = (
        f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body
