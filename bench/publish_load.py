"""Publishers for the load generator: one gRPC Publish stream (gateway) or one pipelined
HTTP/1.1 connection of single-entry POSTs (nchan, or the gateway's POST /api/logs/publish),
each keeping a bounded number of batches in flight.

Both keep their order on the wire: the gateway acks a stream's batches in order, and nginx
answers pipelined requests in order, so a channel's offsets reach subscribers in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc

from bench import entries as wire

PUBLISH_METHOD = "/logs_gateway.v1.LogIngest/Publish"


@dataclass
class Acks:
    """What came back: acked entries, refusals and the send-to-ack time of each batch."""

    entries: int = 0
    errors: int = 0
    duplicates: int = 0
    latencies: array[int] = field(default_factory=lambda: array("q"))
    # Entries not acknowledged, by channel, where the sender named them: subscribers are
    # not owed these (a refused entry is not stored, so its channel's offsets skip it).
    refused: Counter[str] = field(default_factory=Counter)

    def refuse(self, channels: Sequence[str], codes: Sequence[int]) -> None:
        """Count the entries of a batch (their channels, in order) that have no zero code
        (a batch left unanswered: `codes` shorter than `channels`)."""
        for i, channel in enumerate(channels):
            if i >= len(codes) or codes[i]:
                self.refused[channel] += 1


class GrpcPublisher:
    """One `LogIngest.Publish` stream fed with pre-encoded requests."""

    def __init__(self, target: str, token: str, producer: str, in_flight: int) -> None:
        self._channel = grpc.aio.insecure_channel(target)
        method = self._channel.stream_stream(PUBLISH_METHOD)  # raw bytes both ways
        self._call = method(metadata=(("authorization", f"Bearer {token}"),))
        self._producer = wire.field(1, producer.encode())
        self._sequence = 0
        # (sequence, entries, sent ns, each entry's channel when the sender named them)
        self._sent: deque[tuple[int, int, int, Sequence[str]]] = deque()
        self._room = asyncio.Semaphore(in_flight)
        self.acks = Acks()
        self.ended = False  # the gateway ended the stream (UNAVAILABLE when its broker failed)
        self._reader = asyncio.ensure_future(self._read_acks())

    async def send(self, items: list[bytes], channels: Sequence[str] = ()) -> None:
        """Send one batch of `GrpcEntries.entry` items once fewer than `in_flight` wait;
        `channels` (each item's) lets refusals be counted per channel."""
        if await self._room_for(len(items), channels):
            self._sequence += 1
            self._sent.append((self._sequence, len(items), time.time_ns(), channels))
            await self._write(wire.publish_request(self._producer, self._sequence, items))

    async def send_raw(self, request_for: bytes, size: int) -> None:
        """Send a pre-built batch body (`entries` fields only) of `size` entries."""
        if await self._room_for(size, ()):
            self._sequence += 1
            self._sent.append((self._sequence, size, time.time_ns(), ()))
            sequence = wire.varint(self._sequence)
            await self._write(self._producer + b"\x10" + sequence + request_for)

    async def _room_for(self, size: int, channels: Sequence[str]) -> bool:
        """Wait until fewer than `in_flight` batches wait; False, the batch counted as not
        acknowledged, once the stream has ended (a publisher goes on to its deadline and
        reports, instead of waiting for acks that cannot come)."""
        await self._room.acquire()
        if not self.ended:
            return True
        self._room.release()  # the next sender finds the same
        self.acks.errors += size
        self.acks.refuse(channels, ())
        return False

    async def _write(self, request: bytes) -> None:
        # A stream that just ended: the reader or close() counts the batch as sent, unacked.
        with contextlib.suppress(grpc.RpcError, asyncio.InvalidStateError):
            await self._call.write(request)

    async def _read_acks(self) -> None:
        from logs_gateway.v1 import logs_pb2 as pb

        try:
            async for raw in self._call:
                ack = pb.PublishAck.FromString(raw)
                now = time.time_ns()
                sequence, size, sent, channels = self._sent.popleft()
                self.acks.latencies.append(now - sent)
                self.acks.duplicates += ack.duplicate
                ok = sum(1 for r in ack.results if not r.code)
                self.acks.entries += ok
                self.acks.errors += size - ok + (ack.sequence != sequence)
                if ok < size:
                    self.acks.refuse(channels, [r.code for r in ack.results])
                self._room.release()
        except grpc.RpcError:
            self.ended = True
            self._unanswered()
            self._room.release()  # wake a sender waiting for room (it passes it on)

    def _unanswered(self) -> None:
        """Count every batch sent and not answered as not acknowledged."""
        self.acks.errors += sum(size for _, size, _, _ in self._sent)
        for *_, channels in self._sent:
            self.acks.refuse(channels, ())
        self._sent.clear()

    async def close(self, timeout: float) -> None:
        """Half-close, wait for the outstanding acks (bounded), then close the channel."""
        try:
            if not self.ended:
                await asyncio.wait_for(self._call.done_writing(), timeout)
            await asyncio.wait_for(self._reader, timeout)
        except (TimeoutError, grpc.RpcError, asyncio.InvalidStateError):
            pass  # what is still unanswered is counted below
        finally:
            self._reader.cancel()
            self._unanswered()
            await self._channel.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip() == b"content-length":
            return int(value)
    return 0


class _PostReader(asyncio.Protocol):
    """Reads the answers to pipelined POSTs, in order (nginx and aiohttp keep it): each as
    (accepted, entries refused in it: a gateway batch answers 200 with per-entry errors)."""

    def __init__(self, on_answer: Callable[[bool, int], None]) -> None:
        self._buffer = b""
        self._on_answer = on_answer
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            head = buffer[:end].lower()
            length = _content_length(head)
            if len(buffer) < end + 4 + length:
                break
            body = buffer[end + 4 : end + 4 + length]
            self._on_answer(head[9:12] in (b"200", b"201", b"202"), body.count(b'{"error"'))
            buffer = buffer[end + 4 + length :]
        self._buffer = buffer

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class HttpPublisher:
    """Pipelined POSTs on one keep-alive connection, one entry per request (nchan has no
    batch publish): `POST /pub/<channel>` to nchan, `POST /api/logs/publish` with a bearer
    token to the gateway."""

    def __init__(self, host: str, port: int, in_flight: int, token: str = "") -> None:
        self._host, self._port = host, port
        self._auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self._room = asyncio.Semaphore(in_flight)
        self._sent: deque[tuple[int, int, str]] = deque()  # (sent ns, entries, channel)
        self._idle = asyncio.Event()  # set while no answer is outstanding
        self._idle.set()
        self.acks = Acks()
        self._transport: asyncio.Transport | None = None
        self._reader: _PostReader | None = None

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        transport, self._reader = await loop.create_connection(
            lambda: _PostReader(self._answered), self._host, self._port
        )
        self._transport = transport

    def _answered(self, ok: bool, refused: int) -> None:
        sent, entries, channel = self._sent.popleft()
        self.acks.latencies.append(time.time_ns() - sent)
        self.acks.entries += entries - refused if ok else 0
        self.acks.errors += refused if ok else entries
        if channel and (refused or not ok):
            self.acks.refused[channel] += refused if ok else entries
        self._room.release()
        if not self._sent:
            self._idle.set()

    async def send(self, path: str, body: bytes, entries: int = 1, channel: str = "") -> None:
        """POST `body` (`entries` entries: one, or a gateway batch body) once fewer than
        `in_flight` wait; `channel` (where they all go) lets refusals be counted by it."""
        await self._room.acquire()
        assert self._transport is not None
        self._sent.append((time.time_ns(), entries, channel))
        self._idle.clear()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\n{self._auth}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self._transport.write(head.encode() + body)

    async def close(self, timeout: float) -> None:
        """Wait for the outstanding answers (bounded), then close the connection."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        self.acks.errors += sum(entries for _, entries, _ in self._sent)
        for _, entries, channel in self._sent:
            if channel:
                self.acks.refused[channel] += entries
        if self._transport is not None:
            self._transport.close()
