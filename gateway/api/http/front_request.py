"""The front's request (http.front): what llhttp parsed of it, as the RequestFacts the pass
and the routes read, its body as it arrives (inflated a slice at a time when compressed,
so http.bodies bounds it as on aiohttp), and its answer as bytes."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from email.utils import formatdate
from http.cookies import SimpleCookie
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from gateway.api.http.answer import OkAnswer
from gateway.core.errors import invalid

SLICE = 1 << 16  # inflated bytes handed out per read, as aiohttp's reads of a body
# Content-Encoding -> zlib's wbits; deflate is zlib-wrapped, or raw when it does not start
# as zlib does (aiohttp reads both).
WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class FrontBody:
    """A request body as llhttp hands it over. `readany` waits for the next piece; the first
    read of a body not yet received calls `on_wait` once (the front's `100 Continue`)."""

    __slots__ = (
        "_broken",
        "_inflate",
        "_on_wait",
        "_pieces",
        "_received",
        "_waiter",
        "_wbits",
        "buffered",
        "complete",
        "dropped",
        "total_compressed_bytes",
    )

    def __init__(self, encoding: str | None, on_wait: Callable[[], None] | None) -> None:
        self._pieces: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._on_wait = on_wait
        self._broken: str | None = None  # why the rest of the body cannot be read
        self._received = 0
        self._inflate: Any = None  # a zlib decompressor, made at the first piece
        self.total_compressed_bytes: int | None = None if encoding is None else 0
        self._wbits = WBITS.get(encoding or "", 0)
        self.buffered = 0  # bytes received and not read yet
        self.complete = False  # every byte received
        self.dropped = False  # answered: what is left of it is not kept

    @property
    def total_raw_bytes(self) -> int:
        return self._received

    def feed(self, piece: bytes) -> None:
        if self.dropped:
            return
        self._pieces.append(piece)
        self._received += len(piece)
        self.buffered += len(piece)
        self._wake()

    @property
    def awaited(self) -> bool:
        """Whether the client still waits for `100 Continue` to send the body."""
        return self._on_wait is not None and not self.complete

    def discard(self) -> None:
        self.dropped = True
        self._pieces.clear()
        self.buffered = 0

    def fail(self, reason: str) -> None:
        """The rest of the body is malformed: its reader gets a 400 naming `reason`."""
        self._broken = reason
        self._wake()

    def finish(self) -> None:
        self.complete = True
        self._wake()

    def at_eof(self) -> bool:
        return self.complete and not self._pieces and not self._inflate_pending()

    async def readany(self) -> bytes:
        while True:
            if self._inflate_pending():
                return self._inflated(b"")  # never b"" with input left
            if self._pieces:
                data = b"".join(self._pieces) if len(self._pieces) > 1 else self._pieces[0]
                self._pieces.clear()
                self.buffered = 0
                if self.total_compressed_bytes is None:
                    return data
                if out := self._inflated(data):  # a header alone inflates to nothing yet
                    return out
                continue
            if self._broken is not None:
                raise invalid(self._broken)
            if self.complete:
                return b""
            if self._on_wait is not None:
                self._on_wait()
                self._on_wait = None
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def _inflated(self, data: bytes) -> bytes:
        if self._inflate is None:
            raw = data[:1] and data[0] & 0x0F != 8 and self._wbits == zlib.MAX_WBITS
            self._inflate = zlib.decompressobj(-zlib.MAX_WBITS if raw else self._wbits)
        assert self.total_compressed_bytes is not None
        self.total_compressed_bytes += len(data)
        try:
            out: bytes = self._inflate.decompress(self._inflate.unconsumed_tail + data, SLICE)
        except zlib.error:
            raise invalid("the body's Content-Encoding does not decode") from None
        return out

    def _inflate_pending(self) -> bool:
        return self._inflate is not None and bool(self._inflate.unconsumed_tail)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._waiter = None


class FrontRequest:
    """A request served by the front, as http.facts.RequestFacts."""

    __slots__ = ("_values", "content", "headers", "method", "path", "query")

    def __init__(
        self, method: str, path: str, query: str, headers: CIMultiDict[str], content: FrontBody
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.content = content
        # What the pass keeps with the request (its Principal): one or two keys, found by
        # identity (a RequestKey hashes in Python).
        self._values: list[tuple[web.RequestKey[Any], Any]] = []

    @property
    def content_type(self) -> str:
        value = self.headers.get("Content-Type")
        if value is None:
            return "application/octet-stream"
        return value.partition(";")[0].strip().lower()

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return None if value is None else int(value)  # llhttp let only digits through

    @property
    def cookies(self) -> Mapping[str, str]:
        cookie: SimpleCookie = SimpleCookie(self.headers.get("Cookie", ""))
        return {name: morsel.value for name, morsel in cookie.items()}

    def __getitem__(self, key: web.RequestKey[Any]) -> Any:
        for known, value in self._values:
            if known is key:
                return value
        raise KeyError(key)

    def __setitem__(self, key: web.RequestKey[Any], value: Any) -> None:
        self._values.append((key, value))


class Clock:
    """The `Date` header, made once a second."""

    def __init__(self) -> None:
        self._second = 0
        self._date = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._date = formatdate(now, usegmt=True).encode()
        return self._date


def encoded(response: web.StreamResponse, date: bytes, close: bool) -> bytes:
    """An answer as the bytes of an HTTP/1.1 response: what the route put in `response`
    (its status, headers and body), its length, and `Connection: close` when the
    connection ends after it."""
    if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
        raise TypeError("the front answers with a web.Response of bytes only")
    headers = response.headers
    fields = header_lines(headers.items(), len(headers))
    if any(name in headers for name in FRAMING):
        raise ValueError("the route set a header the front sets")
    body = response.body
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (response.status, response.reason.encode("latin-1")),
            fields.encode("latin-1"),
            b"Date: %s\r\nContent-Length: %d\r\n" % (date, len(body)),
            b"Connection: close\r\n\r\n" if close else b"\r\n",
            body,
        )
    )


FRAMING = ("Content-Length", "Transfer-Encoding", "Connection", "Date")


def header_lines(pairs: Iterable[tuple[str, str]], count: int) -> str:
    """The lines of `count` headers a route set; ValueError for a name or value holding a
    line break, which would split or frame the answer."""
    lines = "".join([f"{name}: {value}\r\n" for name, value in pairs])
    if lines.count("\n") != count or lines.count("\r") != count:
        raise ValueError("a header holds a line break")
    return lines


def encoded_ok(answer: OkAnswer, request_id: str, date: bytes, close: bool) -> bytes:
    """`answer` as `encoded` writes the web.Response `answer.response()` makes, with its
    request id (well-formed: http.access), from the answer's own fields."""
    own = header_lines(answer.headers, len(answer.headers)) if answer.headers else ""
    ending = b"Connection: close\r\n\r\n" if close else b"\r\n"
    fields = (answer.content_type.encode(), own.encode(), request_id.encode(), date)
    return OK_HEAD % (*fields, len(answer.body), ending) + answer.body


# The head of an OkAnswer: the route's content type and own headers, the request id (the
# header of http.serve.REQUEST_ID), the date, the length and how the connection goes on.
OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\n%sX-Request-Id: %s\r\nDate: %s\r\n"
OK_HEAD += b"Content-Length: %d\r\n%s"
