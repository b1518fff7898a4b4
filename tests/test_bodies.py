"""Bodies are bounded before they are work: a compression bomb on any path, with or without
a token, costs the gateway a few milliseconds, and bystanders do not wait for it.

A 1 MiB gzip or deflate body of zeros inflates to 1 GiB. Before these bounds, each one cost
the gateway 1.2-2.2 s of CPU after its answer (aiohttp drained and inflated the unread body
for up to 10 s) and held /health for up to 5 s. The bounds below are ten times what the
gateway uses now and several times below that, so a loaded machine cannot cross them.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import time

import grpc
import httpx
import orjson
import pytest
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

from tests.bombs import Bomb, cpu_seconds, send_bomb
from tests.conftest import Running, running_gateway
from tests.test_metrics import scrape, value

CPU_PER_BOMB = 0.25  # seconds; 1.2-2.2 s before, about 0.01-0.03 s now
HEALTH_WAIT = 2.0  # seconds; up to 5 s before, under 100 ms now on a loaded machine
HELD = "2.5"  # the loop-lag bucket (seconds) no observation may pass: a held loop
LAG = "logs_gateway_event_loop_lag_seconds"
CHANNEL = "logs:etl:ws1:wf1"
# path -> the answer (without, with) a token: refused before the body (401, 404, 405) or
# while reading it, at the inflated limit (413).
PATHS = {
    "/api/logs/publish": (401, 413),
    "/v1/logs": (401, 413),
    "/no/such/path": (404, 404),
    "/health": (405, 405),
}


class Bystander:
    """Times GET /health from its own thread (not the loop sending the bomb)."""

    def __init__(self, base: str) -> None:
        self._base = base
        self.times: list[float] = []
        self._stop = threading.Event()
        self._answered = threading.Event()
        self._thread = threading.Thread(target=self._probe)

    def __enter__(self) -> Bystander:
        self._thread.start()
        if not self._answered.wait(30):
            raise TimeoutError("GET /health unanswered before the bomb")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _probe(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                start = time.perf_counter()
                assert client.get(self._base + "/health").status_code == 200
                self.times.append(time.perf_counter() - start)
                self._answered.set()
                self._stop.wait(0.01)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("with_token", [False, True], ids=["no-token", "token"])
async def test_a_bomb_is_refused_without_being_inflated(
    gw_process: Running, encoding: str, path: str, with_token: bool
) -> None:
    assert gw_process.process is not None
    token = gw_process.token("etl", publish=["logs:>"])
    headers = gw_process.headers(token) if with_token else {}
    lag_before = await scrape(gw_process)
    cpu_before = cpu_seconds(gw_process.process.pid)
    with Bystander(gw_process.http) as bystander:
        port = int(gw_process.http.rsplit(":", 1)[1])
        answer = await send_bomb(port, path, Bomb(encoding), headers)
        await asyncio.sleep(0.2)  # /health asked while any leftover of the bomb would run
    cpu = cpu_seconds(gw_process.process.pid) - cpu_before
    lag_after = await scrape(gw_process)

    assert answer.status == PATHS[path][with_token]
    assert answer.headers["connection"] == "close" and answer.closed
    if answer.status == 413:
        doc = orjson.loads(answer.body)
        message = doc["message"] if path == "/v1/logs" else doc["error"]["message"]  # OTLP's Status
        # Whichever bound the inflating body passes first, the answer names it.
        assert "--max-message-bytes" in message or "--max-inflation-ratio" in message
    assert cpu < CPU_PER_BOMB, f"{cpu:.3f} s of gateway CPU for one bomb"
    assert bystander.times and max(bystander.times) < HEALTH_WAIT
    held = value(lag_after, LAG + "_count") - value(lag_after, LAG + "_bucket", le=HELD)
    assert held == value(lag_before, LAG + "_count") - value(lag_before, LAG + "_bucket", le=HELD)


async def test_an_inflation_past_the_ratio_is_refused_and_counted() -> None:
    """With a body limit raised to 64 MiB, a bomb stops at 100 times its wire size, not at
    the limit; an ordinary gzip batch passes, and its connection stays open."""
    async with running_gateway(max_message_bytes=64 << 20, max_inflation_ratio=100) as gw:
        token = gw.token("etl", publish=["logs:>"])
        port = int(gw.http.rsplit(":", 1)[1])
        answer = await send_bomb(port, "/api/logs/publish", Bomb("gzip"), gw.headers(token))
        assert answer.status == 413 and answer.headers["connection"] == "close"
        message = orjson.loads(answer.body)["error"]["message"]
        assert "100 times" in message and "--max-inflation-ratio" in message
        batch = {"entries": [{"channel": CHANNEL, "message": f"line {i}"} for i in range(1000)]}
        headers = gw.headers(token) | {"Content-Encoding": "gzip"}
        async with httpx.AsyncClient() as client:
            for _ in range(2):  # on one connection: the first answer did not close it
                ok = await client.post(
                    gw.http + "/api/logs/publish",
                    content=gzip.compress(orjson.dumps(batch)),
                    headers=headers | {"Content-Type": "application/json"},
                )
                assert ok.status_code == 200 and ok.headers.get("connection") != "close"
        metrics = await scrape(gw)
    assert value(metrics, "logs_gateway_bodies_refused_total", limit="inflation_ratio") == 1
    assert value(metrics, "logs_gateway_bodies_refused_total", limit="inflated_size") == 0


def _publish_compressed(target: str, token: str, inflated: int) -> grpc.RpcError | None:
    request = pb.PublishRequest(
        producer_id="bomb",
        sequence=1,
        entries=[pb.LogEntry(channel=CHANNEL, body="\0" * inflated)],
    )
    with grpc.insecure_channel(target, compression=grpc.Compression.Gzip) as channel:
        stub = pb_grpc.LogIngestStub(channel)
        try:
            list(stub.Publish(iter([request]), metadata=[("authorization", f"Bearer {token}")]))
        except grpc.RpcError as e:
            return e
    return None


async def test_a_grpc_message_compressed_under_the_limit_is_bounded_inflated(
    gw_process: Running,
) -> None:
    """gRPC's receive limit (--max-message-bytes) counts the inflated message: 32 MiB of
    zeros, 32 KiB on the wire, is refused, and inflating stops at the limit."""
    assert gw_process.process is not None
    token = gw_process.token("etl", publish=["logs:>"])
    cpu_before = cpu_seconds(gw_process.process.pid)
    error = await asyncio.to_thread(_publish_compressed, gw_process.grpc_target, token, 32 << 20)
    cpu = cpu_seconds(gw_process.process.pid) - cpu_before
    assert error is not None
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in error.details()
    assert cpu < CPU_PER_BOMB
