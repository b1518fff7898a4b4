"""--event-loop uvloop: the gRPC and HTTP servers run together on one uvloop loop."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.util import find_spec

import httpx
import pytest

from tests.conftest import Running, entry, gateway_process
from tests.sse_client import open_stream

CHANNEL = "logs:etl:workspace1:workflow1"


@pytest.fixture(scope="module")
def on_uvloop() -> Iterator[Running]:
    # Pinned in the dev extra: missing, it fails these tests by name (never a skip).
    assert find_spec("uvloop"), "uvloop is not installed: pip install -e '.[dev]'"
    with gateway_process("--event-loop", "uvloop") as run:
        yield run


async def test_grpc_publish_reaches_sse_on_uvloop(on_uvloop: Running) -> None:
    sub = on_uvloop.token(subscribe=[CHANNEL])
    pub = on_uvloop.token("etl", publish=[CHANNEL])
    async with open_stream(on_uvloop.http, CHANNEL, sub) as stream:
        assert (await stream.next()).event == "ready"
        batches = [[entry(CHANNEL, f"line {i}") for i in range(3)], [entry(CHANNEL, "last")]]
        acks = await on_uvloop.publish(pub, batches)
        assert [len(a.results) for a in acks] == [3, 1]
        got = await stream.take(4)
    assert [e.data["message"] for e in got] == ["line 0", "line 1", "line 2", "last"]
    assert [e.data["offset"] for e in got] == [0, 1, 2, 3]
    await on_uvloop.close()


async def test_http_publish_on_the_front_and_a_stream_handed_to_aiohttp_on_uvloop(
    on_uvloop: Running,
) -> None:
    """The HTTP front on uvloop's transports: publishes on one keep-alive connection, and
    a stream's connection handed to aiohttp."""
    sub = on_uvloop.token(subscribe=[CHANNEL])
    headers = on_uvloop.headers(on_uvloop.token("etl", publish=[CHANNEL]))
    async with (
        open_stream(on_uvloop.http, CHANNEL, sub) as stream,
        httpx.AsyncClient(base_url=on_uvloop.http, headers=headers) as client,
    ):
        assert (await stream.next()).event == "ready"
        for i in range(3):
            body = {"channel": CHANNEL, "message": f"post {i}"}
            assert (await client.post("/api/logs/publish", json=body)).status_code == 200
        got = await stream.take(3)
    assert [e.data["message"] for e in got] == ["post 0", "post 1", "post 2"]


def test_uvloop_gateway_drains_on_sigterm(on_uvloop: Running) -> None:
    assert on_uvloop.process is not None
    on_uvloop.process.terminate()
    assert on_uvloop.process.wait(timeout=15) == 0
