"""Rough sizing figures for docs/OPERATIONS.md, read from the gateway's own /metrics.

Starts a real `logs-gateway serve` (memory broker) on loopback, then
1. opens CONNECTIONS idle SSE streams and reports resident memory per connection;
2. publishes ENTRIES entries over gRPC (batches of BATCH, on STREAMS concurrent streams)
   while SUBSCRIBERS SSE streams follow the channel, and reports entries and deliveries per
   second of the gateway's own CPU time (process_cpu_seconds_total), so the load generator
   sharing the machine does not skew the figure.
Bounded: fixed counts, a 120 s overall limit, loopback only. Run: .venv/bin/python bench/sizing.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import httpx
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc
from prometheus_client.parser import text_string_to_metric_families

from gateway.core.tokens import Signer

SECRET = "sizing-" + "s" * 40
CHANNEL = "logs:etl:sizing:run1"
CONNECTIONS = 2000
SUBSCRIBERS = (1, 100)
ENTRIES = 50_000
BATCH = 100
STREAMS = 4
LIMIT_SECONDS = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def gateway() -> Iterator[tuple[str, str]]:
    http, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGS_GATEWAY_")}
    env |= {"LOGS_GATEWAY_JWT_SECRET": SECRET, "LOGS_GATEWAY_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "gateway", "serve", "--http-port", str(http)]
    command += ["--grpc-port", str(grpc_port), "--max-connections-per-token", "100000"]
    process = subprocess.Popen(command, env=env)
    try:
        url = f"http://127.0.0.1:{http}"
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health").status_code == 200:
                    break
            time.sleep(0.05)
        yield url, f"127.0.0.1:{grpc_port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


async def metrics(url: str) -> dict[str, float]:
    async with httpx.AsyncClient() as client:
        text = (await client.get(url + "/metrics")).text
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


async def open_sse(url: str, token: str, count: int) -> list[asyncio.StreamWriter]:
    """`count` SSE connections that read and discard what they get (minimal client cost)."""
    host, port = url.removeprefix("http://").split(":")
    request = (
        f"GET /api/logs/stream?channels={CHANNEL} HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()
    writers = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        await reader.readuntil(b"event: ready")
        asyncio.get_running_loop().create_task(_discard(reader))
        writers.append(writer)
    return writers


async def _discard(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            pass


async def memory_per_connection(url: str, token: str) -> None:
    before = (await metrics(url))["process_resident_memory_bytes"]
    writers = await open_sse(url, token, CONNECTIONS)
    await asyncio.sleep(1)
    after = await metrics(url)
    per = (after["process_resident_memory_bytes"] - before) / CONNECTIONS
    print(
        f"memory: {CONNECTIONS} idle SSE connections, {per / 1024:.1f} KiB each "
        f"(RSS {before / 2**20:.0f} -> {after['process_resident_memory_bytes'] / 2**20:.0f} MiB)"
    )
    for w in writers:
        w.close()


async def publish(target: str, token: str, producer: str, batches: int) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.LogIngestStub(channel)
        call = stub.Publish(
            _requests(producer, batches), metadata=[("authorization", f"Bearer {token}")]
        )
        async for _ in call:
            pass


async def _requests(producer: str, batches: int) -> AsyncIterator[pb.PublishRequest]:
    for seq in range(1, batches + 1):
        entries = [
            pb.LogEntry(channel=CHANNEL, body=f"step {seq}/{i} done in 12 ms", severity_number=9)
            for i in range(BATCH)
        ]
        yield pb.PublishRequest(producer_id=producer, sequence=seq, entries=entries)


async def throughput(url: str, target: str, signer: Signer, subscribers: int) -> None:
    writers = await open_sse(url, signer.mint("reader", subscribe=[CHANNEL]), subscribers)
    before = await metrics(url)
    started = time.monotonic()
    token = signer.mint("writer", publish=[CHANNEL])
    per_stream = ENTRIES // BATCH // STREAMS
    await asyncio.gather(
        *(publish(target, token, f"p{subscribers}-{i}", per_stream) for i in range(STREAMS))
    )
    delivered_key = "logs_gateway_entries_delivered_total"
    want = before[delivered_key] + per_stream * STREAMS * BATCH * subscribers
    after = await delivered(url, want)
    wall = time.monotonic() - started
    cpu = after["process_cpu_seconds_total"] - before["process_cpu_seconds_total"]
    entries = per_stream * STREAMS * BATCH
    deliveries = after[delivered_key] - before[delivered_key]
    print(
        f"throughput: {entries} entries, {subscribers} subscriber(s): "
        f"{entries / cpu:,.0f} entries/s and {deliveries / cpu:,.0f} deliveries/s per "
        f"gateway CPU second ({cpu:.1f} s CPU, {wall:.1f} s wall)"
    )
    for w in writers:
        w.close()


async def delivered(url: str, want: float) -> dict[str, float]:
    """The gateway's metrics once it has handed `want` entries to subscribers in all."""
    for _ in range(LIMIT_SECONDS * 20):
        now = await metrics(url)
        if now["logs_gateway_entries_delivered_total"] >= want:
            return now
        await asyncio.sleep(0.05)
    raise TimeoutError("subscribers did not receive every entry")


async def main() -> None:
    signer = Signer(secret=SECRET.encode(), issuer="logs-gateway", audience="logs-gateway")
    with gateway() as (url, target):
        await memory_per_connection(url, signer.mint("idle", subscribe=[CHANNEL]))
        for subscribers in SUBSCRIBERS:
            await throughput(url, target, signer, subscribers)


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), LIMIT_SECONDS))
