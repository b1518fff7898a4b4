"""Real gateway processes on one NATS JetStream stream behave as one gateway.

Every gateway here is a `logs-gateway serve --broker nats://...` process; clients talk to
them over gRPC and SSE only.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import httpx
import pytest

from tests.conftest import Running, entry, gateway_process
from tests.nats_cluster import NatsCluster, running_nats
from tests.sse_client import Event, open_stream

ETL = "logs:etl:ws7:wf1"
FAAS = "logs:faas:ws7:fn1"
_streams = itertools.count()


def nats_gateway(url: str, stream: str) -> contextlib.AbstractContextManager[Running]:
    return gateway_process("--broker", url, "--nats-stream", stream)


@pytest.fixture(scope="module")
def pair(nats_server: NatsCluster) -> Iterator[tuple[Running, Running]]:
    """Two gateways on one fresh stream."""
    stream = f"gateways-{next(_streams)}-{time.monotonic_ns()}"
    with nats_gateway(nats_server.url, stream) as a, nats_gateway(nats_server.url, stream) as b:
        yield a, b


def tokens(run: Running) -> tuple[str, str]:
    return run.token("svc", publish=["logs:>"]), run.token("reader", subscribe=["logs:>"])


def messages(events: Sequence[Event]) -> list[str]:
    return [e.data["message"] for e in events]


async def test_an_entry_published_on_one_reaches_subscribers_on_both(
    pair: tuple[Running, Running],
) -> None:
    a, b = pair
    pub, sub = tokens(a)
    async with (
        open_stream(a.http, "logs:etl:>", sub) as on_a,
        open_stream(b.http, "logs:etl:>", sub) as on_b,
        open_stream(b.http, FAAS, sub) as faas_on_b,
    ):
        for stream in (on_a, on_b, faas_on_b):
            await stream.next()
        await a.publish(pub, [[entry(ETL, "one"), entry(FAAS, "f"), entry(ETL, "two")]], "x")
        from_a, from_b = await on_a.take(2), await on_b.take(2)
        assert messages(from_b) == ["one", "two"]
        assert [(e.id, e.data) for e in from_b] == [(e.id, e.data) for e in from_a]
        assert messages(await faas_on_b.take(1)) == ["f"]


async def test_a_cursor_from_one_resumes_exactly_on_the_other(
    pair: tuple[Running, Running],
) -> None:
    a, b = pair
    pub, sub = tokens(a)
    async with open_stream(a.http, f"{ETL},{FAAS}", sub) as stream:
        await stream.next()
        await a.publish(pub, [[entry(ETL, "m0"), entry(FAAS, "m1")]], producer="resume")
        cursor = max((await stream.take(2)), key=lambda e: int(e.id.rsplit("-", 1)[1])).id
    missed = [[entry(ETL, "m2")], [entry("logs:etl:ws7:other", "x")], [entry(FAAS, "m3")]]
    await b.publish(pub, missed, producer="resume", first_seq=2)
    async with open_stream(b.http, f"{ETL},{FAAS}", sub, last_event_id=cursor) as stream:
        await stream.next()
        assert messages(await stream.take(2)) == ["m2", "m3"]
        await a.publish(pub, [[entry(ETL, "live")]], producer="resume", first_seq=5)
        assert messages(await stream.take(1)) == ["live"]


async def test_nats_unreachable_gives_503_and_unavailable_then_recovers(tmp_path: Path) -> None:
    with running_nats(tmp_path / "nats", 1) as cluster, nats_gateway(cluster.url, "down") as gw:
        pub, _ = tokens(gw)
        await gw.publish(pub, [[entry(ETL, "before")]], producer="down")
        async with httpx.AsyncClient() as client:
            assert (await client.get(gw.http + "/ready")).status_code == 200
            cluster.kill(cluster.nodes[0])
            deadline = time.monotonic() + 15
            while (await client.get(gw.http + "/ready")).status_code != 503:
                assert time.monotonic() < deadline, "/ready stayed 200 with NATS gone"
            began = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await gw.publish(pub, [[entry(ETL, "during")]], producer="down", first_seq=2)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert time.monotonic() - began < 2.0  # at once, not after a broker timeout
            cluster.restart(cluster.nodes[0])
            deadline = time.monotonic() + 30
            while (await client.get(gw.http + "/ready")).status_code != 200:
                assert time.monotonic() < deadline, "/ready never came back"
        (ack,) = await gw.publish(pub, [[entry(ETL, "after")]], producer="down", first_seq=3)
        assert [r.offset for r in ack.results] == [1]  # history kept over the restart
