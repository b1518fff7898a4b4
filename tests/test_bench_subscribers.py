"""The benchmark's C subscribers (bench/sse_subscribers.c) count what the delivery rows
report: against a scripted SSE server on a real socket, streams cut at awkward places
(chunk-size lines, markers and events split across chunks and across reads), they must
find the hole, the duplicate and the gap that the script put in, and the refused stream."""

from __future__ import annotations

import asyncio
import time
from array import array

from bench import native

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
REFUSED = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"


def event(offset: int) -> bytes:
    data = b'{"channel":"c","offset":%d,"message":"%019d xx"}' % (offset, time.time_ns())
    return b"id: e-%d\nevent: log\ndata: %b\n\n" % (offset + 1, data)


def chunked(body: bytes, size: int) -> bytes:
    """`body` as chunks of `size` bytes (the last one shorter), a `;` extension on each."""
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x;x=1\r\n%b\r\n" % (len(p), p) for p in parts)


class Script:
    """An SSE server whose streams are written in two parts once the window is open: the
    second only when the subscribers have reported progress past the first (so the two are
    separate reads)."""

    def __init__(self, streams: dict[str, list[int]], gap_after: str) -> None:
        self.streams = streams
        self.gap_after = gap_after
        self.first_part = asyncio.Event()
        self.second_part = asyncio.Event()
        self.handlers: list[asyncio.Task[None]] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await self._stream(reader, writer)
        finally:
            writer.close()

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        path = request.split(b" ", 2)[1].decode()
        if path not in self.streams:
            writer.write(REFUSED)
            return
        body = b"".join(event(o) for o in self.streams[path])
        if path == self.gap_after:
            body += b'id: e-99\nevent: gap\ndata: {"lost":3}\n\n: ping\n\n'
        wire = chunked(body, 37)
        cut = wire.index(b"\r\n", len(wire) // 2) - 1  # inside a chunk-size line
        writer.write(HEAD)
        await self.first_part.wait()
        writer.write(wire[:cut])
        await writer.drain()
        await self.second_part.wait()
        writer.write(wire[cut:])
        await reader.read()  # until the subscriber goes


async def test_c_subscribers_find_the_hole_the_duplicate_and_the_gap() -> None:
    clean, flawed = list(range(10)), [0, 1, 2, 3, 5, 6, 6, 7, 8, 9]  # 4 lost, 6 twice
    script = Script({"/full": clean, "/sampled": flawed}, gap_after="/full")
    server = await asyncio.start_server(script.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    child = await asyncio.create_subprocess_exec(
        *(str(native.subscribers()), "127.0.0.1", str(port), "-", "2"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(b"/full\n/sampled\n/missing\n\n")
    assert await child.stdout.readline() == b"ready 2\n"
    child.stdin.write(b"go\n")
    assert await child.stdout.readline() == b"progress 0\n"  # the window is open
    script.first_part.set()
    while int((await child.stdout.readline()).split()[1]) == 0:
        pass  # progress lines, until both first parts are read
    script.second_part.set()
    child.stdin.write(b"expect 10000 10 10 0\n")
    while not (line := await child.stdout.readline()).startswith(b"result"):
        assert line.startswith(b"progress"), line
    *counted, _cpu, samples = line.split()[1:]
    received, lost, dups, gaps, opened, closed, refused, last_receive_ns = map(int, counted)
    latencies = array("q", await child.stdout.readexactly(int(samples) * 8))
    child.stdin.close()
    await child.wait()
    await asyncio.gather(*script.handlers)
    server.close()
    await server.wait_closed()
    assert (received, lost, dups, gaps) == (20, 1, 1, 1)
    assert (opened, closed, refused) == (2, 0, 1)
    assert 0 < time.time_ns() - last_receive_ns < 10e9
    assert len(latencies) >= 10 + 1  # every event of /full; at least one a read of /sampled
    assert all(0 < ns < 10e9 for ns in latencies)
