"""SSE subscribers for the load generator: raw asyncio protocols that parse only what the
figures need, so one core keeps up with a server writing hundreds of thousands of events/s.

Per read, a subscriber counts the `log` events (`bytes.count`, in C) and parses the offsets
of the first and the last one: when they are the expected next offset and `count - 1`
further, nothing was lost, doubled or reordered in between (offsets of a channel are
consecutive). Only a read that fails that check, or a subscriber chosen for a full check, is
parsed event by event. Every event carries its send time (`"message":"<ns> ..."`): the
oldest event of each read is a latency sample (its worst), or every event under full check.
"""

from __future__ import annotations

import asyncio
import re
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

# Field lines: a data line is one line of JSON ending in `}`, so these match nothing else.
EVENT = b"event: log\n"
GAP = b"event: gap\n"
OFFSET = b'"offset":'
MESSAGE = b'"message":"'
STAMP_DIGITS = 19
_EVENT_FIELDS = re.compile(rb'"offset":(\d+).*?"message":"(\d{19})')


def _int_after(block: bytes, mark: bytes, start: int, digits: int = 0) -> int:
    """The decimal number right after `mark` at `start` (fixed width when `digits`)."""
    begin = start + len(mark)
    if digits:
        return int(block[begin : begin + digits])
    end = begin
    while block[end] in b"0123456789":  # offsets are short; a loop beats a regex here
        end += 1
    return int(block[begin:end])


class Tracker:
    """Delivery accounting of one subscriber of one channel."""

    __slots__ = ("dups", "full", "gaps", "holes", "next", "received")

    def __init__(self, first_offset: int, full: bool) -> None:
        self.next = first_offset  # the offset expected next
        self.received = 0
        self.dups = 0
        self.holes = 0  # offsets skipped over (lost in the middle)
        self.gaps = 0  # `event: gap` frames (the server reporting loss)
        self.full = full

    def take(self, block: bytes, now_ns: int, latencies: array[int]) -> None:
        """Account for a run of complete SSE events."""
        count = block.count(EVENT)
        if GAP in block:
            self.gaps += block.count(GAP)
        if not count:
            return
        self.received += count
        if self.full:
            self._take_each(block, now_ns, latencies)
            return
        first_at = block.find(OFFSET)
        first = _int_after(block, OFFSET, first_at)
        last = _int_after(block, OFFSET, block.rfind(OFFSET)) if count > 1 else first
        if first != self.next or last - first != count - 1:
            self._take_each(block, now_ns, latencies)
            return
        self.next = last + 1
        sent = _int_after(block, MESSAGE, block.find(MESSAGE, first_at), STAMP_DIGITS)
        latencies.append(now_ns - sent)

    def _take_each(self, block: bytes, now_ns: int, latencies: array[int]) -> None:
        for offset_text, sent_text in _EVENT_FIELDS.findall(block):
            offset = int(offset_text)
            if offset < self.next:
                self.dups += 1
                continue
            self.holes += offset - self.next
            self.next = offset + 1
            latencies.append(now_ns - int(sent_text))

    def lost(self, published: int) -> int:
        """Entries published to the channel that this subscriber never received."""
        return self.holes + max(0, published - self.next)


@dataclass
class Shared:
    """What every subscriber of one worker process writes into."""

    latencies: array[int]
    last_receive_ns: int = 0
    opened: int = 0
    closed: int = 0
    bad_status: int = 0


class SseSubscriber(asyncio.Protocol):
    """One SSE connection: sends the GET, reads the head, de-chunks the body, splits it into
    complete events and hands them to its Tracker."""

    def __init__(self, request: bytes, tracker: Tracker, shared: Shared) -> None:
        self._request = request
        self.tracker = tracker
        self._shared = shared
        self._head: bytes | None = b""  # None once the head is read
        self._chunked = False
        self._need = 0  # payload bytes left in the current chunk
        self._skip = 0  # CRLF bytes left after the current chunk
        self._pending = b""  # an incomplete chunk-size line
        self._rest = b""  # an incomplete SSE event
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not a subclass
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head is None:
            self._shared.closed += 1
        if not self.ready.done():
            self.ready.set_result(False)

    def data_received(self, data: bytes) -> None:
        if self._head is not None:
            data = self._read_head(data)
            if not data:
                return
        body = self._dechunk(data) if self._chunked else data
        text = self._rest + body if self._rest else body
        cut = text.rfind(b"\n\n")
        if cut < 0:
            self._rest = text
            return
        self._rest = text[cut + 2 :]
        now = time.time_ns()
        self._shared.last_receive_ns = now
        self.tracker.take(text[: cut + 2], now, self._shared.latencies)

    def _read_head(self, data: bytes) -> bytes:
        assert self._head is not None
        head = self._head + data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            self._head = head
            return b""
        lines = head[:end].lower().split(b"\r\n")
        ok = lines[0].split(b" ", 2)[1:2] == [b"200"]
        self._chunked = b"transfer-encoding: chunked" in lines
        self._head = None
        self._shared.opened += ok
        self._shared.bad_status += not ok
        self.ready.set_result(ok)
        return head[end + 4 :]

    def _dechunk(self, data: bytes) -> bytes:
        if self._pending:
            data, self._pending = self._pending + data, b""
        out: list[bytes] = []
        pos, size = 0, len(data)
        while pos < size:
            if self._need:
                end = min(size, pos + self._need)
                out.append(data[pos:end])
                self._need -= end - pos
                pos = end
                if not self._need:
                    self._skip = 2
            elif self._skip:
                step = min(self._skip, size - pos)
                self._skip -= step
                pos += step
            else:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    self._pending = data[pos:]
                    break
                self._need = int(data[pos:eol].split(b";", 1)[0], 16)
                pos = eol + 2
        return out[0] if len(out) == 1 else b"".join(out)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def get_request(path: str, host: str, token: str | None, last_event_id: str = "") -> bytes:
    """The HTTP/1.1 GET of an SSE stream, as a browser's EventSource sends it (with
    `Last-Event-ID` when it reconnects)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Accept: text/event-stream"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if last_event_id:
        lines.append(f"Last-Event-ID: {last_event_id}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def open_subscribers(
    host: str,
    port: int,
    requests: Sequence[tuple[bytes, Tracker]],
    shared: Shared,
    concurrency: int = 200,
) -> list[SseSubscriber]:
    """Connect every subscriber (at most `concurrency` handshakes at a time) and wait until
    each has its response head; the ones refused are counted in `shared`."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)

    async def one(request: bytes, tracker: Tracker) -> SseSubscriber:
        async with gate:
            _, sub = await loop.create_connection(
                lambda: SseSubscriber(request, tracker, shared), host, port
            )
            await sub.ready
            return sub

    return list(await asyncio.gather(*(one(r, t) for r, t in requests)))
