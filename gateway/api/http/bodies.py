"""Request bodies bounded before they are work: read within limits, or never read at all.

aiohttp inflates a `Content-Encoding: gzip` or `deflate` body as it is read, a slice at a
time. So a body is work only when something reads it, and two rules keep that work bounded:

- A body that is read (publish, /v1/logs) is read by `BodyReader`, which counts the
  inflated bytes as they come and refuses the body at the first limit it passes: more
  than `--max-message-bytes` once inflated, or (past its first MiB) more than
  `--max-inflation-ratio` times the bytes that came on the wire.
- A compressed body nobody read all of (a request refused before its body: 401, 404, 405,
  413 ...) is never drained: `close_inflating` sends the answer with `Connection: close`
  and closes the connection. aiohttp would otherwise read (and inflate) what is left for
  up to 10 s before reusing the connection: 1 GiB from a 1 MiB gzip body, 1-2 s of CPU.
  An uncompressed body is still drained so, as aiohttp does: that costs no more than
  receiving it, and a client still sending reads its answer instead of a reset.
"""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from gateway.api.http.facts import Body, RequestFacts
from gateway.core.errors import Code, GatewayError

# The inflation ratio is checked past this many inflated bytes: a small body of repeated
# text compresses far better than a large one, and inflating 1 MiB costs under a ms.
RATIO_FROM_BYTES = 1 << 20
SIZE = "inflated_size"  # the limits, as /metrics labels them
RATIO = "inflation_ratio"


class BodyReader:
    """Reads request bodies within `max_bytes` inflated and `max_ratio` times their wire
    size; counts the bodies refused, by limit, for /metrics."""

    def __init__(self, max_bytes: int, max_ratio: int) -> None:
        self.max_bytes = max_bytes
        self.max_ratio = max_ratio
        self.refused: Counter[str] = Counter()

    async def read(self, request: RequestFacts) -> bytes:
        """The whole body, inflated; GatewayError TOO_LARGE naming the limit it passed,
        at the first slice that passes it."""
        length = request.content_length
        if length is not None and length > self.max_bytes:
            raise self._refuse(SIZE)
        content = request.content
        first = await content.readany()
        self._check(len(first), content)
        if content.at_eof():  # the whole body in one read, as most are: no copy
            return first
        body = bytearray(first)
        while chunk := await content.readany():
            body += chunk
            self._check(len(body), content)
        return bytes(body)

    def _check(self, size: int, content: Body) -> None:
        """Refuse a body that inflates to `size` bytes so far."""
        if size > self.max_bytes:
            raise self._refuse(SIZE)
        if size > RATIO_FROM_BYTES and size > self.max_ratio * max(1, content.total_raw_bytes):
            raise self._refuse(RATIO)

    def _refuse(self, limit: str) -> GatewayError:
        self.refused[limit] += 1
        if limit == SIZE:
            message = f"body larger than {self.max_bytes} bytes (--max-message-bytes, inflated)"
        else:
            message = (
                f"body inflates to more than {self.max_ratio} times its compressed size"
                " (--max-inflation-ratio)"
            )
        return GatewayError(Code.TOO_LARGE, message, reason=limit)


async def close_inflating(request: web.Request, response: web.StreamResponse) -> None:
    """For a request whose body is left partly unread: when aiohttp would inflate the rest
    (`total_compressed_bytes` is set for a compressed body), send `response` now and close
    the connection, so the rest is never read."""
    if request.content.total_compressed_bytes is None:
        return
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if request.transport is not None:
        request.transport.close()
