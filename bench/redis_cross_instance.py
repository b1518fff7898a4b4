"""Cross-instance latency and throughput of the Redis broker, beside the memory broker.

    .venv/bin/python bench/redis_cross_instance.py [--quick]

Starts a private redis-server and gateway processes on free ports (nothing else is
touched), then measures:

- latency: one-entry batches published over gRPC to gateway A at a steady rate, received
  over SSE on gateway B (cross-instance), on A itself, and on a lone memory-broker gateway;
  each entry carries its send time, so a sample is send -> SSE bytes read, p50/p99;
- throughput: batches of 100 published as fast as acks come (8 batches in flight) while
  subscribers on B read every entry: entries/s end to end, and deliveries/s (entries x
  subscribers), Redis against memory.

Publisher, subscribers, gateways and Redis share this machine's cores, so the figures are
a floor for what separate machines would give.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

from gateway.core.tokens import Signer

HOST = "127.0.0.1"
SECRET = "bench-secret-" + "x" * 40
SIGNER = Signer(secret=SECRET.encode(), issuer="logs-gateway", audience="logs-gateway")
CHANNEL = "logs:bench:ws1:run1"
STAMP = re.compile(rb'"message":"(\d{19})')
EVENT = b"event: log\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.5):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {port}")
        time.sleep(0.05)


@contextlib.contextmanager
def process(command: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[None]:
    """A child process, up once `port` accepts; SIGTERM (then SIGKILL) on exit."""
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        _wait_port(port)
        yield
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    port, folder = free_port(), tempfile.mkdtemp(prefix="bench-redis-")
    command = ["redis-server", "--port", str(port), "--bind", HOST, "--dir", folder]
    try:
        with process([*command, "--save", "", "--appendonly", "no"], port):
            yield f"redis://{HOST}:{port}/0"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Gateway:
    http: int
    grpc: int


@contextlib.contextmanager
def gateway(broker: str) -> Iterator[Gateway]:
    ports = Gateway(free_port(), free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGS_GATEWAY_")}
    env |= {"LOGS_GATEWAY_JWT_SECRET": SECRET, "LOGS_GATEWAY_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "gateway", "serve", "--broker", broker]
    command += ["--http-port", str(ports.http), "--grpc-port", str(ports.grpc)]
    command += ["--max-connections-per-token", "100000"]
    with process(command, ports.http, env):
        yield ports


# -- clients -------------------------------------------------------------------------------


@dataclass
class Subscriber:
    """One raw SSE connection: counts `log` events; with `timed`, samples latencies."""

    timed: bool = False
    received: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    last_at: float = 0.0
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, port: int, token: str) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(
            f"GET /api/logs/stream?channels={CHANNEL} HTTP/1.1\r\nHost: {HOST}\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        pending = b""
        try:
            while data := await reader.read(1 << 16):
                pending = self._take(pending + data)
        finally:
            writer.close()

    def _take(self, data: bytes) -> bytes:
        """Account for the complete events in `data`; return the incomplete rest."""
        end = data.rfind(b"\n\n") + 2
        block, rest = data[:end], data[end:]
        if b"event: ready" in block:
            self._ready.set()
        count = block.count(EVENT)
        if count:
            self.received += count
            self.last_at = time.monotonic()
            if self.timed:
                now = time.time_ns()
                self.latencies_ns += [now - int(m) for m in STAMP.findall(block)]
        return rest


@contextlib.asynccontextmanager
async def subscribed(port: int, count: int, timed: bool = False) -> AsyncIterator[list[Subscriber]]:
    token = SIGNER.mint("reader", subscribe=[CHANNEL])
    subscribers = [Subscriber(timed=timed) for _ in range(count)]
    tasks = [asyncio.create_task(s.run(port, token)) for s in subscribers]
    try:
        await asyncio.wait_for(asyncio.gather(*(s._ready.wait() for s in subscribers)), 30)
        yield subscribers
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def publish(port: int, batches: int, size: int, rate: float | None, window: int) -> None:
    """`batches` batches of `size` entries on one Publish stream, at `rate` batches/s (or
    as fast as acks come), at most `window` unacked."""
    token = SIGNER.mint("writer", publish=[CHANNEL])
    credit = asyncio.Semaphore(window)
    producer = f"bench-{time.time_ns()}"  # a fresh de-duplication key space per run

    async def requests() -> AsyncIterator[pb.PublishRequest]:
        for n in range(1, batches + 1):
            await credit.acquire()
            if rate:
                await asyncio.sleep(1 / rate)
            body = f"{time.time_ns()} bench entry"
            entries = [pb.LogEntry(channel=CHANNEL, body=body, severity_number=9)] * size
            yield pb.PublishRequest(producer_id=producer, sequence=n, entries=entries)

    async with grpc.aio.insecure_channel(f"{HOST}:{port}") as channel:
        call = pb_grpc.LogIngestStub(channel).Publish(
            requests(), metadata=[("authorization", f"Bearer {token}")]
        )
        async for _ in call:
            credit.release()


async def until_received(subscribers: list[Subscriber], want: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while any(s.received < want for s in subscribers):
        if time.monotonic() > deadline:
            raise TimeoutError(f"received {[s.received for s in subscribers]} of {want}")
        await asyncio.sleep(0.01)


# -- measurements --------------------------------------------------------------------------


async def latency(name: str, publish_to: int, read_on: int, count: int) -> None:
    async with subscribed(read_on, 1, timed=True) as (subscriber,):
        await publish(publish_to, count, 1, rate=200, window=8)
        await until_received([subscriber], count)
    samples = sorted(subscriber.latencies_ns)
    p50 = statistics.median(samples) / 1e6
    p99 = samples[int(len(samples) * 0.99) - 1] / 1e6
    print(f"latency  {name:<34} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  ({count} entries, 200/s)")


async def throughput(
    name: str, publish_to: int, read_on: int, subscribers: int, entries: int
) -> None:
    async with subscribed(read_on, subscribers) as readers:
        started = time.monotonic()
        await publish(publish_to, entries // 100, 100, rate=None, window=8)
        acked = time.monotonic() - started
        await until_received(readers, entries)
    wall = max(r.last_at for r in readers) - started
    print(
        f"through  {name:<34} {entries / acked:9,.0f} entries/s acked, "
        f"{entries / wall:9,.0f} entries/s and {entries * subscribers / wall:11,.0f} "
        f"deliveries/s received ({subscribers} subscribers)"
    )


async def measure(quick: bool) -> None:
    count, entries = (300, 20_000) if quick else (2_000, 100_000)
    with redis_server() as url, gateway(url) as a, gateway(url) as b, gateway("memory") as m:
        await latency("redis, published A -> read on B", a.grpc, b.http, count)
        await latency("redis, published A -> read on A", a.grpc, a.http, count)
        await latency("memory (one gateway)", m.grpc, m.http, count)
        for subscribers in (1, 100):
            await throughput("redis, A -> B", a.grpc, b.http, subscribers, entries)
            await throughput("memory (one gateway)", m.grpc, m.http, subscribers, entries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed")
    asyncio.run(measure(parser.parse_args().quick))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
