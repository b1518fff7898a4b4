"""Redis stopped (kill -9) and started again in the middle of a publish stream.

The test owns its redis-server (own port and folder, every write on disk), so it can kill
and restart it. A publisher that resends each refused batch under the same (producer,
sequence) loses nothing and duplicates nothing; the open SSE stream keeps its heartbeats
through the outage and then receives every entry once, with no gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

from tests.conftest import Running, entry, gateway_process, wait_for
from tests.redis_server import RedisServer, running_redis

CHANNEL = "logs:etl:outage:wf1"
BATCHES = 60
OUTAGE_AFTER = 20  # acked batches before Redis is killed
MARKER = "the last entry"
Metadata = list[tuple[str, str]]


@dataclass
class RawStream:
    """Every line of one SSE response, heartbeat comments included."""

    lines: list[str] = field(default_factory=list)

    def count(self, line: str) -> int:
        return self.lines.count(line)

    def messages(self) -> list[object]:
        return [d["message"] for d in self.data_of("log")]

    def data_of(self, event: str) -> list[dict[str, object]]:
        pairs = zip(self.lines, self.lines[1:], strict=False)
        return [orjson.loads(d[6:]) for e, d in pairs if e == f"event: {event}"]

    async def read(self, run: Running, token: str) -> None:
        url, params = run.http + "/api/logs/stream", {"channels": CHANNEL}
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client,
            client.stream("GET", url, params=params, headers=run.headers(token)) as response,
        ):
            async for line in response.aiter_lines():
                self.lines.append(line)


@dataclass
class Publisher:
    """Publishes BATCHES one-entry batches, resending a refused one until it is acked."""

    run: Running
    token: str
    acked: int = 0
    # (seconds it took, status) of each refused attempt
    refusals: list[tuple[float, grpc.StatusCode]] = field(default_factory=list)

    async def publish_all(self) -> None:
        stub, metadata = self.run.ingest(self.token)
        for n in range(1, BATCHES + 1):
            request = pb.PublishRequest(
                producer_id="outage", sequence=n, entries=[entry(CHANNEL, f"m{n}")]
            )
            while not await self._attempt(stub, metadata, request):
                await asyncio.sleep(0.05)
            self.acked = n
            await asyncio.sleep(0.01)

    async def _attempt(
        self, stub: pb_grpc.LogIngestStub, metadata: Metadata, request: pb.PublishRequest
    ) -> bool:
        started = time.monotonic()
        try:
            (ack,) = [a async for a in stub.Publish(iter([request]), metadata=metadata)]
        except grpc.aio.AioRpcError as e:
            self.refusals.append((time.monotonic() - started, e.code()))
            return False
        assert ack.results[0].code == 0
        return True


@contextlib.asynccontextmanager
async def background(coroutine: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.ensure_future(coroutine)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_redis_restart_mid_stream_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    heartbeat = {"LOGS_GATEWAY_HEARTBEAT_SECONDS": "0.2"}
    with (
        running_redis(tmp_path, persistent=True) as redis,
        gateway_process("--broker", redis.url, env=heartbeat) as gateway,
    ):
        await _publish_through_an_outage(gateway, redis)


async def _publish_through_an_outage(gateway: Running, redis: RedisServer) -> None:
    stream, late = RawStream(), RawStream()
    publisher = Publisher(gateway, gateway.token("svc", publish=["logs:>"]))
    reader = gateway.token("reader", subscribe=["logs:>"])
    async with background(stream.read(gateway, reader)) as reading:
        await wait_for(lambda: stream.count("event: ready"))
        async with background(publisher.publish_all()) as publishing:
            await wait_for(lambda: publisher.acked >= OUTAGE_AFTER)
            redis.stop(signal.SIGKILL)
            await wait_for(lambda: publisher.refusals)
            async with httpx.AsyncClient() as client:
                assert (await client.get(gateway.http + "/ready")).status_code == 503
            pings = stream.count(": ping")
            # A new stream can start live meanwhile (a resume would need Redis).
            async with background(late.read(gateway, reader)):
                await wait_for(lambda: late.count("event: ready"))
                # The stream stays open: heartbeats go on through the outage.
                await wait_for(lambda: stream.count(": ping") >= pings + 3)
                assert publisher.acked < BATCHES
                redis.start()
                await asyncio.wait_for(publishing, 30)
                # Published last: anything stored twice has arrived once the marker has.
                await gateway.publish(publisher.token, [[entry(CHANNEL, MARKER)]], "marker")
                await wait_for(lambda: late.messages()[-1:] == [MARKER])
        # Every attempt during the outage was refused promptly (not after a long hang):
        # "stored nothing", or, for one Redis may have run before it died (sent on a
        # connection the kill then cut), "outcome unknown"; the resend stores it once.
        statuses = {status for _, status in publisher.refusals}
        assert grpc.StatusCode.UNAVAILABLE in statuses
        assert statuses <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
        assert max(seconds for seconds, _ in publisher.refusals) < 2.5
        await wait_for(lambda: stream.messages()[-1:] == [MARKER], 15)
        assert not reading.done()
    logs = stream.data_of("log")
    assert stream.messages() == [*(f"m{n}" for n in range(1, BATCHES + 1)), MARKER]
    assert [d["offset"] for d in logs] == list(range(BATCHES + 1))
    assert stream.data_of("gap") == []
    later = late.data_of("log")
    assert later == logs[-len(later) :]  # everything after its start, once each
