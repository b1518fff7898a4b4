"""Real gateway processes sharing one Redis behave as one gateway (issue 5).

Every gateway here is a `logs-gateway serve --broker redis://...` process; clients talk to
them over gRPC and SSE only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from logs_gateway.v1 import logs_pb2 as pb

from tests.conftest import Running, entry, gateway_process, running_gateway
from tests.gateway_pairs import (
    a_cursor_from_one_resumes_exactly_on_the_other,
    messages,
    published_on_one_reaches_subscribers_on_both,
    tokens,
)
from tests.redis_server import RedisServer, running_redis
from tests.sse_client import Stream, open_stream

ETL = "logs:etl:ws5:wf1"
ETL2 = "logs:etl:ws5:wf2"
FAAS = "logs:faas:ws5:fn1"


def redis_gateway(url: str, *extra: str) -> contextlib.AbstractContextManager[Running]:
    return gateway_process("--broker", url, *extra)


@pytest.fixture(scope="module")
def pair(redis_server: RedisServer) -> Iterator[tuple[Running, Running]]:
    """Two gateways on one fresh Redis."""
    redis_server.client().flushall()
    with redis_gateway(redis_server.url) as a, redis_gateway(redis_server.url) as b:
        yield a, b


async def head_cursor(run: Running, token: str, channels: str) -> str:
    """The cursor a live-only subscriber starts at (its `ready` frame's id)."""
    async with open_stream(run.http, channels, token) as stream:
        return (await stream.next()).id


async def test_an_entry_published_on_one_reaches_subscribers_on_both(
    pair: tuple[Running, Running],
) -> None:
    await published_on_one_reaches_subscribers_on_both(*pair, ETL, ETL2, FAAS)


async def test_a_cursor_from_one_resumes_exactly_on_the_other(
    pair: tuple[Running, Running],
) -> None:
    await a_cursor_from_one_resumes_exactly_on_the_other(*pair, ETL, ETL2, FAAS)


async def test_a_batch_resent_to_the_other_is_acked_as_a_duplicate(
    pair: tuple[Running, Running],
) -> None:
    a, b = pair
    pub, sub = tokens(a)
    start = await head_cursor(b, sub, ETL)
    (first,) = await a.publish(pub, [[entry(ETL, "once")]], producer="dedup")
    (again,) = await b.publish(pub, [[entry(ETL, "once")]], producer="dedup")
    assert not first.duplicate
    assert again.duplicate
    assert [(r.offset, r.cursor) for r in again.results] == [
        (r.offset, r.cursor) for r in first.results
    ]
    await b.publish(pub, [[entry(ETL, "marker")]], producer="dedup", first_seq=2)
    async with open_stream(b.http, ETL, sub, last_event_id=start) as stream:
        await stream.next()
        assert messages(await stream.take(2)) == ["once", "marker"]


# -- failures ------------------------------------------------------------------------------


async def publish_until_killed(run: Running, token: str, kill_after: int) -> list[str]:
    """Publish batches of 5 as fast as acks come; SIGKILL the gateway after `kill_after`
    acks (with more batches in flight). Returns every message that was acked."""
    stub, metadata = run.ingest(token)
    acked: list[str] = []

    async def batches() -> AsyncIterator[pb.PublishRequest]:
        for n in itertools.count(1):
            yield pb.PublishRequest(
                producer_id="k9", sequence=n, entries=[entry(ETL, f"{n}.{i}") for i in range(5)]
            )
            await asyncio.sleep(0.001)

    async def read_acks() -> None:
        async for ack in stub.Publish(batches(), metadata=metadata):
            assert all(r.code == 0 for r in ack.results)
            acked.extend(f"{ack.sequence}.{i}" for i in range(5))
            if len(acked) == kill_after * 5:
                assert run.process is not None
                os.kill(run.process.pid, signal.SIGKILL)

    with pytest.raises(grpc.aio.AioRpcError):
        await read_acks()
    return acked


async def resume(run: Running, token: str, cursor: str, until: list[str]) -> list[str]:
    """Messages replayed after `cursor`, up to the last of `until` (and the next if any)."""
    async with open_stream(run.http, ETL, token, last_event_id=cursor) as stream:
        await stream.next()
        return await _read_until(stream, until[-1])


async def _read_until(stream: Stream, last: str) -> list[str]:
    got: list[str] = []
    while last not in got:
        got += messages(await stream.take(1))
    return got


async def test_kill_9_mid_publish_loses_no_acked_entry(redis_server: RedisServer) -> None:
    with redis_gateway(redis_server.url) as a, redis_gateway(redis_server.url) as b:
        pub, sub = tokens(a)
        cursor = await head_cursor(b, sub, ETL)
        acked = await publish_until_killed(a, pub, kill_after=20)
        assert a.process is not None
        assert a.process.wait(timeout=10) == -signal.SIGKILL
        on_b = await resume(b, sub, cursor, acked)
    assert len(set(on_b)) == len(on_b)
    assert set(acked) <= set(on_b)
    assert on_b == sorted(on_b, key=lambda m: tuple(map(int, m.split("."))))
    # Every gateway restarted: history is in Redis, the same cursor resumes the same.
    with redis_gateway(redis_server.url) as c:
        assert await resume(c, sub, cursor, on_b) == on_b


async def test_redis_losing_its_data_ends_live_streams_and_resume_says_reset(
    tmp_path: Path,
) -> None:
    with running_redis(tmp_path) as redis:
        async with running_gateway(broker=redis.url) as run:
            pub, sub = tokens(run)
            async with open_stream(run.http, ETL, sub) as stream:
                await stream.next()
                await run.publish(pub, [[entry(ETL, "before")]], producer="lost")
                cursor = (await stream.take(1))[0].id
                redis.client().flushall()
                await run.publish(pub, [[entry(ETL, "after")]], producer="lost", first_seq=2)
                last = (await stream.take(1, kind="shutdown"))[0].data
                assert last == {
                    "reason": "resync",
                    "message": "live feed interrupted; reconnect to resume",
                    "retry_ms": 1000,
                }
            async with open_stream(run.http, ETL, sub, last_event_id=cursor) as stream:
                await stream.next()
                gap = await stream.next()
                assert (gap.event, gap.data["reason"]) == ("gap", "reset")
                assert messages(await stream.take(1)) == ["after"]
