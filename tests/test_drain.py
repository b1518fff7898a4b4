"""SIGTERM drains a real gateway process: acked entries reach subscribers, exit within grace."""

from __future__ import annotations

import asyncio
import logging
import queue
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import grpc
import pytest
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

from tests.conftest import Running, entry, gateway_process, running_gateway, wait_for
from tests.sse_client import open_stream

ETL = "logs:etl:workspace123:workflow456"
IDLE_STREAMS = 1000


async def open_idle_streams(gw: Running, token: str, n: int) -> list[asyncio.StreamWriter]:
    """Raw SSE connections that only sit there, as thousands of browser tabs would."""
    url = urlsplit(gw.http)
    request = (
        f"GET /api/logs/stream?channels={ETL} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()
    writers = []
    for _ in range(n):
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(request)
        writers.append(writer)
        await reader.readuntil(b"event: ready")
    return writers


def publish_until_refused(
    gw: Running, token: str, acked: list[str], producer: str = "drain"
) -> grpc.StatusCode:
    """Publish batches one after another until the gateway ends the stream.

    Uses the synchronous gRPC API: grpc.aio clients can report INTERNAL instead of the
    server's status when a write races the end of the stream (grpc/grpc#36066).
    """
    turn: queue.Queue[None] = queue.Queue()
    sent: dict[int, list[str]] = {}

    def requests() -> Iterator[pb.PublishRequest]:
        for seq in range(1, 1_000_000):
            sent[seq] = [f"{producer}-{seq}-{i}" for i in range(10)]
            yield pb.PublishRequest(
                producer_id=producer, sequence=seq, entries=[entry(ETL, m) for m in sent[seq]]
            )
            turn.get(timeout=10)

    with grpc.insecure_channel(gw.grpc_target) as channel:
        stub = pb_grpc.LogIngestStub(channel)
        try:
            for ack in stub.Publish(requests(), metadata=[("authorization", f"Bearer {token}")]):
                assert all(r.code == 0 for r in ack.results)
                acked.extend(sent[ack.sequence])
                turn.put(None)
        except grpc.RpcError as e:
            code: grpc.StatusCode = e.code()
            return code
    raise AssertionError("the stream was never ended")


@pytest.mark.parametrize("publishers", [1, 10])
async def test_sigterm_drains_with_many_open_streams(publishers: int) -> None:
    with gateway_process(
        env={"LOGS_GATEWAY_MAX_CONNECTIONS_PER_TOKEN": "5000", "LOGS_GATEWAY_GRACE_SECONDS": "5"}
    ) as gw:
        assert gw.process is not None
        sub = gw.token(subscribe=[ETL])
        idle = await open_idle_streams(gw, sub, IDLE_STREAMS)
        received: list[str] = []
        acked: list[list[str]] = [[] for _ in range(publishers)]
        async with open_stream(gw.http, ETL, sub) as stream:
            await stream.next()
            with ThreadPoolExecutor(publishers) as threads:
                running = [
                    asyncio.get_running_loop().run_in_executor(
                        threads,
                        publish_until_refused,
                        gw,
                        gw.token(f"svc{p}", publish=[ETL]),  # a rate budget of its own
                        acked[p],
                        f"p{p}",
                    )
                    for p in range(publishers)
                ]
                while sum(map(len, acked)) < 500:
                    await asyncio.sleep(0.01)
                started = time.monotonic()
                gw.process.send_signal(signal.SIGTERM)
                codes = await asyncio.gather(*running)
            while (event := await stream.next(timeout=10)).event != "shutdown":
                received.append(event.data["message"])
            await asyncio.to_thread(gw.process.wait, 10)
            elapsed = time.monotonic() - started
        for writer in idle:
            writer.close()
        await gw.close()
        assert set(codes) == {grpc.StatusCode.UNAVAILABLE}
        for p, acked_by_p in enumerate(acked):
            of_p = [m for m in received if m.startswith(f"p{p}-")]
            assert of_p[: len(acked_by_p)] == acked_by_p, "an acked entry was not delivered"
        assert gw.process.returncode == 0
        assert elapsed < 5 + 2, f"drain took {elapsed:.1f} s"


async def test_a_drain_that_runs_out_its_grace_says_what_was_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A send buffer larger than what it is sent: not dropped as slow, just never done.
    async with running_gateway(
        grace_seconds=1.0, publish_rate=0.0, send_buffer_bytes=1 << 26
    ) as gw:
        assert gw.gateway is not None
        token = gw.token(subscribe=[ETL])
        [stuck] = await open_idle_streams(gw, token, 1)  # it never reads again
        pub = gw.token(publish=[ETL])
        big = [[entry(ETL, "x" * 60_000) for _ in range(50)] for _ in range(4)]  # ~12 MB
        await gw.publish(pub, big)
        await wait_for(lambda: gw.gateway is not None and gw.gateway.hub.subscriptions == 1)
        with caplog.at_level(logging.WARNING, logger="logs_gateway"):
            await gw.gateway.stop()
        stuck.close()
    left = [r for r in caplog.records if r.getMessage().startswith("drain: streams still open")]
    assert len(left) == 1 and left[0].streams == 1  # type: ignore[attr-defined]
