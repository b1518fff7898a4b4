"""Real gateway processes on one NATS JetStream stream behave as one gateway.

Every gateway here is a `logs-gateway serve --broker nats://...` process; clients talk to
them over gRPC and SSE only.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from tests.conftest import Running, entry, gateway_process
from tests.gateway_pairs import (
    a_cursor_from_one_resumes_exactly_on_the_other,
    published_on_one_reaches_subscribers_on_both,
    tokens,
)
from tests.nats_cluster import NatsCluster, running_nats

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


async def test_an_entry_published_on_one_reaches_subscribers_on_both(
    pair: tuple[Running, Running],
) -> None:
    # One channel twice: a batch's channels are stored one after another on NATS.
    await published_on_one_reaches_subscribers_on_both(*pair, ETL, ETL, FAAS)


async def test_a_cursor_from_one_resumes_exactly_on_the_other(
    pair: tuple[Running, Running],
) -> None:
    await a_cursor_from_one_resumes_exactly_on_the_other(*pair, ETL, "logs:etl:ws7:other", FAAS)


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
