"""Per-token stream counts shared by every worker and gateway (SharedCounts), in Redis
(gateway.core.stream_counts) and in a JetStream KV bucket (gateway.core.stream_counts_nats):
one suite against a real server of each. Counts are exact under concurrent admissions, a
dead instance's streams stop counting once their leases run out, and nothing is left
behind."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import nats
import pytest

from gateway.core.admission import SharedCounts
from gateway.core.stream_counts import RedisStreamCounts
from gateway.core.stream_counts_nats import NatsStreamCounts
from tests.conftest import free_port
from tests.nats_cluster import NatsCluster
from tests.redis_server import RedisServer


class Counts(SharedCounts, Protocol):
    async def close(self) -> None: ...


class Backend:
    """Makes instances of one SharedCounts sharing one namespace on one server (or at
    another address), and tells what they left in their server."""

    def __init__(
        self, url: str, make: Callable[[str, float], Counts], left: Callable[[], object]
    ) -> None:
        self.url, self._make, self.left = url, make, left
        self.made: list[Counts] = []

    def instance(self, lease: float = 30.0, url: str = "") -> Counts:
        self.made.append(counts := self._make(url or self.url, lease))
        return counts


def redis_backend(server: RedisServer) -> Backend:
    prefix = f"counts-{uuid.uuid4().hex}"
    client = server.client()

    def make(url: str, lease: float) -> Counts:
        return RedisStreamCounts(url, prefix=prefix, lease=lease, timeout=1.0)

    return Backend(server.url, make, lambda: list(client.scan_iter(f"{prefix}:*")))


def nats_backend(server: NatsCluster) -> Backend:
    bucket = f"counts-{uuid.uuid4().hex}"

    def make(url: str, lease: float) -> Counts:
        return NatsStreamCounts(url, bucket=bucket, lease=lease, timeout=1.0)

    async def left() -> list[str]:
        client = await nats.connect(server.url)
        try:
            info = await client.jetstream().stream_info(f"KV_{bucket}", subjects_filter=">")
        finally:
            await client.close()
        return sorted(info.state.subjects or {})

    return Backend(server.url, make, left)


@pytest.fixture(params=["redis", "nats"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "redis":
        made = redis_backend(request.getfixturevalue("redis_server"))
    else:
        made = nats_backend(request.getfixturevalue("nats_server"))
    try:
        yield made
    finally:
        for counts in made.made:
            await counts.close()


async def left_behind(backend: Backend) -> object:
    found = backend.left()
    return await found if asyncio.iscoroutine(found) else found


async def test_a_dead_instances_stream_counts_run_out(backend: Backend) -> None:
    """An instance that dies holding streams stops counting once their leases run out; a
    live one keeps its streams counted by renewing them."""
    dead, live = backend.instance(lease=1.0), backend.instance(lease=1.0)
    assert await live.take("subscribe", "tok", "s1", 3)
    assert await dead.take("subscribe", "tok", "s1", 3)
    assert await dead.take("subscribe", "tok", "s2", 3)
    assert not await live.take("subscribe", "tok", "s2", 3)
    await dead.close()  # as if it crashed: its streams were never given back
    assert not await live.take("subscribe", "tok", "s2", 3)  # still counted
    started = time.monotonic()
    while not await live.take("subscribe", "tok", "s2", 3):
        assert time.monotonic() - started < 5
        await asyncio.sleep(0.05)
    assert await live.take("subscribe", "tok", "s3", 3)
    # Past several leases the live instance's three are still counted (renewed).
    await asyncio.sleep(2.5)
    assert not await live.take("subscribe", "tok", "s4", 3)
    live.give_back("subscribe", "tok", "s1")
    while not await live.take("subscribe", "tok", "s4", 3):  # its removal is sent apart
        assert time.monotonic() - started < 10
        await asyncio.sleep(0.05)


async def test_concurrent_admissions_on_many_instances_never_pass_the_limit(
    backend: Backend,
) -> None:
    """Four instances admit 40 streams of one token at once: exactly the limit get in,
    and every one given back frees its place for exactly one more."""
    instances = [backend.instance() for _ in range(4)]
    attempts = [(i, f"s{n}") for n in range(10) for i in instances]
    verdicts = await asyncio.gather(*(i.take("publish", "tok", s, 7) for i, s in attempts))
    assert verdicts.count(True) == 7 and verdicts.count(False) == 33
    admitted = [attempt for attempt, ok in zip(attempts, verdicts, strict=True) if ok]
    for holder, stream in admitted[:2]:
        holder.give_back("publish", "tok", stream)
    deadline = time.monotonic() + 5
    again: list[bool | None] = []
    while again.count(True) < 2:
        assert time.monotonic() < deadline, again
        again += await asyncio.gather(*(i.take("publish", "tok", "t", 7) for i in instances))
        await asyncio.sleep(0.05)
    assert again.count(True) == 2
    assert not await instances[0].take("publish", "tok", "u", 7)
    assert await instances[0].take("publish", "other token", "u", 7)


async def test_a_token_whose_holders_all_died_leaves_nothing_behind(backend: Backend) -> None:
    for n in range(3):
        holder = backend.instance(lease=1.0)
        assert await holder.take("subscribe", f"gone-{n}", "s", 2)
        await holder.close()
    deadline = time.monotonic() + 10
    while left := await left_behind(backend):
        assert time.monotonic() < deadline, f"still there: {left}"
        await asyncio.sleep(0.2)


async def test_unreachable_counts_answer_none_so_the_process_counts_alone(
    backend: Backend,
) -> None:
    """Nothing listens where the counts point: `take` answers None (Admission then counts
    the process's own streams) within its timeout, and never raises."""
    scheme = backend.url.split("://")[0]
    counts = backend.instance(url=f"{scheme}://127.0.0.1:{free_port()}")
    started = time.monotonic()
    assert await counts.take("subscribe", "tok", "s1", 3) is None
    assert await counts.take("subscribe", "tok", "s2", 3) is None
    assert time.monotonic() - started < 10
    counts.give_back("subscribe", "tok", "s1")  # never counted there: nothing to send
