"""Latencies a load test measures from processes of their own (a bystander's, another
Redis client's), so that the load's own readers do not delay them."""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis.asyncio as aioredis

HOST = "127.0.0.1"
BYSTANDER = "logs:bystander:ws0:own"
_SPAWN = multiprocessing.get_context("spawn")


@dataclass
class Latency:
    """Bystander latencies (ms) and publishes answered 503, while a phase runs."""

    samples: list[float] = field(default_factory=list)
    unavailable: int = 0

    def summary(self) -> str:
        if not self.samples:
            return "no samples"
        ordered = sorted(self.samples)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (
            f"p50 {statistics.median(ordered):.1f} ms, p99 {p99:.1f} ms, "
            f"max {ordered[-1]:.1f} ms ({len(ordered)} entries)"
        )


async def _bystander(http: str, port: int, reader: str, writer: str, out: Any) -> None:
    """The bystander's own loop: publish 100 entries/s to BYSTANDER, follow it, and send
    (time sent, latency ms or None for a 503) for each entry to `out` until told to stop."""
    stream, stream_writer = await asyncio.open_connection(HOST, port)
    head = f"GET /api/logs/stream?channels={BYSTANDER} HTTP/1.1\r\nHost: x\r\n"
    stream_writer.write(f"{head}Authorization: Bearer {reader}\r\n\r\n".encode())
    await stream.readuntil(b"event: ready")
    sent: dict[str, float] = {}

    async def follow() -> None:
        while True:
            line = await stream.readline()
            if b'"message":"by ' in line:
                key = line.split(b'"message":"by ', 1)[1].split(b'"', 1)[0].decode()
                if (at := sent.pop(key, None)) is not None:
                    out.send((at, (time.time() - at) * 1000))

    async def publish() -> None:
        headers = {"Authorization": f"Bearer {writer}"}
        async with httpx.AsyncClient(timeout=30) as client:
            n, next_at = 0, time.perf_counter()
            while not out.poll():
                n += 1
                sent[str(n)] = at = time.time()
                body = {"entries": [{"channel": BYSTANDER, "message": f"by {n}"}]}
                answer = await client.post(http + "/api/logs/publish", json=body, headers=headers)
                if answer.status_code == 503:
                    out.send((at, None))
                next_at += 0.01
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    follower = asyncio.create_task(follow())
    await publish()
    follower.cancel()
    stream_writer.close()


async def _pinger(url: str, out: Any) -> None:
    """Another Redis client: PING every 10 ms, sending (time sent, latency ms) to `out`."""
    client = aioredis.Redis.from_url(url)
    while not out.poll():
        at = time.time()
        await client.ping()
        out.send((at, (time.time() - at) * 1000))
        await asyncio.sleep(0.01)
    await client.aclose()


def _run(coroutine: Any, *args: Any) -> None:
    asyncio.run(coroutine(*args))


class Sampler:
    """Latencies measured in a process of its own (the readers of the load would delay
    them in this one): `window()` ends a measurement window and returns what it saw."""

    def __init__(self, coroutine: Any, *args: Any) -> None:
        self._here, there = _SPAWN.Pipe()
        target_args = (coroutine, *args, there)
        self._process = _SPAWN.Process(target=_run, args=target_args, daemon=True)
        self._since = time.time()
        self._seen: list[tuple[float, float | None]] = []

    @classmethod
    def bystander(cls, http: str, port: int, reader: str, writer: str) -> Sampler:
        """Publishes 100 entries/s to BYSTANDER over HTTP at `http` (its port `port`) and
        follows it over SSE, with tokens `reader` and `writer`."""
        return cls(_bystander, http, port, reader, writer)

    @classmethod
    def pinger(cls, url: str) -> Sampler:
        """PINGs the Redis at `url` every 10 ms."""
        return cls(_pinger, url)

    def __enter__(self) -> Sampler:
        self._process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._here.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()

    def window(self) -> Latency:
        end = time.time()
        while self._here.poll():
            self._seen.append(self._here.recv())
        inside = [(at, ms) for at, ms in self._seen if self._since <= at < end]
        self._seen = [(at, ms) for at, ms in self._seen if at >= end]
        self._since = end
        return Latency(
            [ms for _, ms in inside if ms is not None], sum(ms is None for _, ms in inside)
        )
