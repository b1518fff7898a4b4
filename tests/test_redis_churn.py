"""Channels come and go on the Redis broker: what a churn of channels leaves in Redis once
their history and records have expired, and a resume across very many channels.

Each test runs its own redis-server, so DBSIZE, SCAN and INFO memory see only its keys."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.app.brokers import redis_broker
from gateway.core.broker import GAP_MEMORY
from gateway.core.broker_redis import RedisBroker
from gateway.core.channels import parse_pattern
from gateway.core.cursor import Cursor
from tests.broker_reads import read_all
from tests.conftest import make_config, wait_for
from tests.redis_server import RedisServer, running_redis
from tests.test_broker_contract import entry

FIXED = {"logs-gateway:epoch", "logs-gateway:seq", "logs-gateway:feed", "logs-gateway:forgotten"}
BATCH = 500  # channels per append


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
async def brokers() -> AsyncIterator[list[RedisBroker]]:
    made: list[RedisBroker] = []
    yield made
    for broker in made:
        await broker.close()


def run(i: int) -> str:
    return f"logs:etl:ws{i % 7}:run-{i}"


def keys(server: RedisServer) -> set[str]:
    """The keys that exist now (SCAN leaves out keys past their TTL)."""
    return {key.decode() for key in server.client().scan_iter(count=1000)}


def used_memory(server: RedisServer) -> int:
    return int(server.client().info("memory")["used_memory"])


async def test_a_churn_of_channels_leaves_only_the_fixed_keys(
    own_redis: RedisServer, brokers: list[RedisBroker]
) -> None:
    max_age, n = 1.0, 20_000
    broker = redis_broker(
        make_config(broker=own_redis.url, history_seconds=max_age, dedup_seconds=max_age)
    )
    brokers.append(broker)
    head = await broker.head()
    start = Cursor(broker.epoch, head)
    before = used_memory(own_redis)
    for i in range(0, n, BATCH):
        batch = [entry(run(j), "m" * 100) for j in range(i, i + BATCH)]
        await broker.append(batch, ("producer", i))
    last_append = time.monotonic()
    present = keys(own_redis)
    # Each channel has a history and a ledger (the first may have expired already).
    assert {f"logs-gateway:h:{run(n - 1)}", f"logs-gateway:s:{run(n - 1)}"} <= present
    # A resume from before all of them: one gap per pattern, and it adds no key (but the
    # fixed forgotten horizon, should it forget channels).
    patterns = [parse_pattern("logs:etl:>"), parse_pattern("logs:*:ws1:>")]
    replay = await read_all(broker, patterns, start)
    # At most one gap per pattern and page (DESIGN §3.2): channels that expire while the
    # read pages on (one-second lives on a loaded machine) are counted again later, at
    # their own place, never twice at one.
    gapped = [(g.pattern, g.seq) for g in replay.gaps]
    assert "logs:etl:>" in {p for p, _ in gapped} and len(set(gapped)) == len(gapped)
    assert keys(own_redis) - FIXED <= present
    # Past every record's life (GAP_MEMORY windows after the history's), nothing is left
    # of the channels, their registry or the producer's de-duplication window.
    await asyncio.sleep(last_append + 2 * GAP_MEMORY * max_age - time.monotonic())
    left = keys(own_redis)
    assert left <= FIXED and {"logs-gateway:epoch", "logs-gateway:seq"} <= left
    server = own_redis.client()
    await wait_for(lambda: server.dbsize() == len(left), timeout=10)  # reclaimed, not only hidden
    # What stays is the feed (its own bound, FEED_MAX appends), not even a registry entry
    # (~120 bytes) a channel; a one-entry channel held ~5 kB.
    feed = server.memory_usage("logs-gateway:feed") or 0
    assert used_memory(own_redis) - before - feed < 64 * n
    assert broker.usage().channels == 0
    # A cursor from before the churn is told its losses can no longer be counted.
    late = await read_all(broker, patterns, start)
    assert [(g.pattern, g.reason) for g in late.gaps] == [
        ("logs:etl:>", "expired"),
        ("logs:*:ws1:>", "expired"),
    ]
    assert all(g.seq == n for g in late.gaps) and late.events == []
    # A channel used again starts a new life at offset 0; its seqs go on.
    again = (await broker.append([entry(run(0), "again")], ("producer", 0))).events
    assert [(e.offset, e.seq) for e in again] == [(0, n + 1)]


async def test_a_resume_across_100000_channels_succeeds_with_one_gap_per_pattern(
    own_redis: RedisServer, brokers: list[RedisBroker]
) -> None:
    """Every channel lost one entry (two appended, one kept): the replay reads all 100,000
    in pages, each within the socket timeout, and reports one gap per pattern."""
    n = 100_000
    broker = redis_broker(make_config(broker=own_redis.url, history_entries=1, history_seconds=600))
    brokers.append(broker)
    head = await broker.head()
    start = Cursor(broker.epoch, head)
    for i in range(0, n, BATCH):
        channels = [run(j) for j in range(i, i + BATCH)]
        await broker.append([entry(c, m) for m in ("lost", "kept") for c in channels], None)
    patterns = [parse_pattern("logs:etl:ws1:>"), parse_pattern("logs:etl:>")]
    replay = await read_all(broker, patterns, start)
    in_ws1 = len([i for i in range(n) if i % 7 == 1])
    assert [(g.pattern, g.lost, g.channels, g.reason) for g in replay.gaps] == [
        ("logs:etl:ws1:>", in_ws1, in_ws1, "trimmed"),
        ("logs:etl:>", n - in_ws1, n - in_ws1, "trimmed"),
    ]
    assert len(replay.events) == n
    assert all(e.offset == 1 for e in replay.events)
    # From the last gap's cursor on only what follows it is replayed, and nothing is lost.
    after = await read_all(broker, patterns, Cursor(broker.epoch, replay.gaps[-1].seq))
    assert after.gaps == []
    assert after.events == [e for e in replay.events if e.seq > replay.gaps[-1].seq]
