"""The plain answer of the routes the front serves (publish, OTLP): a 200 whose content type,
body and any header of its own are known when it is made.

Both servers send it. aiohttp gets it as the web.Response `response()` makes (in the pass,
http.serve); the front writes it as the bytes of an HTTP/1.1 answer with no aiohttp object
built (http.front_request.encoded_ok). Why: the web.Response a publish built, and the front
took apart again, cost a tenth of the front's single-entry POST (docs/PERFORMANCE.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True, slots=True)
class OkAnswer:
    """200 with `body` as `content_type`. `headers` are the route's own (names and values
    from its code, never from the request), sent after the content type."""

    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()

    def response(self) -> web.Response:
        response = web.Response(body=self.body, headers={"Content-Type": self.content_type})
        response.headers.extend(self.headers)
        return response
