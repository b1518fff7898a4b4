"""Compression bombs built cheaply, sent as a hostile client sends them, and what a
bystander sees meanwhile: the gateway process's CPU time and a timed /health.

A bomb is one compressed block of zeros repeated: each block is flushed with Z_FULL_FLUSH,
which resets the compressor, so every block compresses the same and the whole stream costs
one block's compression (1 MiB of zeros is about 1 KiB; 1 GiB about 1 MiB). The checksum
of the trailer is computed only if the whole stream is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import struct
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx

BLOCK = 1 << 20  # inflated bytes per repeated block
GIB = 1 << 30
GZIP_HEAD = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # deflate, no name, no time
ZLIB_HEAD = b"\x78\xda"  # deflate, 32 KiB window, best compression


@dataclass(frozen=True)
class Bomb:
    """A Content-Encoding and the body's compressed bytes, inflating to `inflated`."""

    encoding: str  # "gzip" or "deflate" (RFC 1950 zlib, as HTTP's deflate)
    inflated: int = GIB

    @property
    def _block(self) -> tuple[bytes, bytes]:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        block = compressor.compress(bytes(BLOCK)) + compressor.flush(zlib.Z_FULL_FLUSH)
        return block, compressor.flush(zlib.Z_FINISH)

    def size(self) -> int:
        block, end = self._block
        head, tail = (10, 8) if self.encoding == "gzip" else (2, 4)
        return head + len(block) * (self.inflated // BLOCK) + len(end) + tail

    def chunks(self) -> Iterator[bytes]:
        """The body in pieces of about 64 KiB, the trailer's checksum last."""
        block, end = self._block
        blocks = self.inflated // BLOCK
        yield (
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" if self.encoding == "gzip" else b"\x78\xda"
        )
        per_chunk = max(1, (64 << 10) // len(block))
        for start in range(0, blocks, per_chunk):
            yield block * min(per_chunk, blocks - start)
        yield end + self._trailer()

    def _trailer(self) -> bytes:
        return _trailer(self.encoding, self.inflated)


@functools.cache
def _trailer(encoding: str, inflated: int) -> bytes:
    """The checksum (and size) that ends a stream of `inflated` zeros: about a second for
    1 GiB, once per run, and only for a gateway that took the whole body."""
    zeros = bytes(BLOCK)
    if encoding == "gzip":
        crc = 0
        for _ in range(inflated // BLOCK):
            crc = zlib.crc32(zeros, crc)
        return struct.pack("<II", crc, inflated & 0xFFFFFFFF)
    adler = 1
    for _ in range(inflated // BLOCK):
        adler = zlib.adler32(zeros, adler)
    return struct.pack(">I", adler)


@dataclass
class Answer:
    """What the bomb's sender saw: the status line and headers, and how much it sent."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    sent: int = 0
    closed: bool = False  # the gateway closed the connection


async def send_bomb(
    port: int, path: str, bomb: Bomb, headers: dict[str, str], wait: float = 30.0
) -> Answer:
    """POST the bomb over one connection, reading while sending; returns once the gateway
    has closed the connection, or `wait` seconds passed.

    A raw socket: a stream transport stops reading at its first failed write, and the
    gateway's answer is then lost in the client, not on the wire."""
    loop = asyncio.get_running_loop()
    fields = {
        "Host": f"127.0.0.1:{port}",
        "Content-Type": "application/json",
        "Content-Encoding": bomb.encoding,
        "Content-Length": str(bomb.size()),
        **headers,
    }
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    answer = Answer()
    received = bytearray()
    with socket.socket() as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        sending = asyncio.create_task(_send(sock, head.encode() + b"\r\n", bomb, answer))
        try:
            async with asyncio.timeout(wait):
                await _receive(sock, received)
                answer.closed = True
        except TimeoutError:
            pass
        finally:
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await sending
    _parse(bytes(received), answer)
    return answer


async def _send(sock: socket.socket, head: bytes, bomb: Bomb, answer: Answer) -> None:
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, head)
    for chunk in bomb.chunks():
        await loop.sock_sendall(sock, chunk)
        answer.sent += len(chunk)


async def _receive(sock: socket.socket, received: bytearray) -> None:
    """What the gateway sends until it closes the connection (a reset ends it too)."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionResetError):
        while data := await loop.sock_recv(sock, 1 << 16):
            received += data


def _parse(received: bytes, answer: Answer) -> None:
    head, _, answer.body = received.partition(b"\r\n\r\n")
    if not head:
        return
    status_line, *lines = head.decode().split("\r\n")
    answer.status = int(status_line.split()[1])
    for line in lines:
        name, _, value = line.partition(":")
        answer.headers[name.strip().lower()] = value.strip()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (from /proc, in clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def timed_health(base: str, every: float = 0.02) -> AsyncIterator[list[float]]:
    """Time GET /health every `every` seconds while the block runs; the list holds each
    answer's time in seconds (the bystander's view of the gateway's loop)."""
    times: list[float] = []

    async def probe(client: httpx.AsyncClient) -> None:
        while True:
            start = time.perf_counter()
            response = await client.get(base + "/health")
            assert response.status_code == 200
            times.append(time.perf_counter() - start)
            await asyncio.sleep(every)

    async with httpx.AsyncClient(timeout=30) as client:
        task = asyncio.create_task(probe(client))
        try:
            yield times
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
