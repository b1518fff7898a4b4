"""What the pass (http.serve) and the routes served on both servers read of a request: a
small Protocol that aiohttp's Request satisfies, and so does the front's own request
(http.front_request), so one pass and one handler serve both without a second copy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeVar

from aiohttp import web

from gateway.api.http.answer import OkAnswer

T = TypeVar("T")


class Body(Protocol):
    """A request body read as it comes, inflated (gzip, deflate) a slice at a time."""

    @property
    def total_raw_bytes(self) -> int:
        """The bytes received so far, as on the wire (compressed, when it is)."""
        ...

    # None for a body sent as it is; the compressed bytes read so far otherwise.
    total_compressed_bytes: int | None

    async def readany(self) -> bytes:
        """The next slice of the body; b"" once it has all been read."""
        ...

    def at_eof(self) -> bool:
        """Whether the whole body has been received and read."""
        ...


class RequestFacts(Protocol):
    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str:
        """The path, percent-decoded, without the query."""
        ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Case-insensitive."""
        ...

    @property
    def cookies(self) -> Mapping[str, str]: ...

    @property
    def content_type(self) -> str:
        """The media type alone, lower case; application/octet-stream when none is sent."""
        ...

    @property
    def content_length(self) -> int | None: ...

    @property
    def content(self) -> Body: ...

    def __getitem__(self, key: web.RequestKey[T]) -> T: ...

    def __setitem__(self, key: web.RequestKey[T], value: T) -> None: ...


Reply = web.StreamResponse | OkAnswer
"""What a route answers: an OkAnswer on the routes the front serves (the pass hands
aiohttp its web.Response), else any response of aiohttp's."""
FactsHandler = Callable[[RequestFacts], Awaitable[Reply]]
