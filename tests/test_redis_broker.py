"""What the Redis broker adds to the protocol: several instances on one Redis, history that
outlives them, and what happens when Redis goes away or an instance falls behind."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from gateway.app.brokers import redis_broker
from gateway.core.broker_redis import RedisBroker
from gateway.core.channels import parse_pattern
from gateway.core.cursor import Cursor
from gateway.core.errors import Code, GatewayError
from gateway.core.events import Event
from tests.broker_reads import read_all
from tests.conftest import make_config
from tests.redis_server import RedisServer, running_redis
from tests.test_broker_contract import ETL, FAAS, Received, entry

_prefixes = itertools.count()
EVERYTHING = [parse_pattern("logs:>")]
MakeRedisBroker = Callable[..., RedisBroker]


@pytest.fixture
async def make_broker(redis_server: RedisServer) -> AsyncIterator[MakeRedisBroker]:
    """Brokers on the session's Redis sharing one fresh key prefix: one per instance."""
    made: list[RedisBroker] = []
    prefix = f"redis-broker{next(_prefixes)}"

    def make(url: str = redis_server.url, **options: object) -> RedisBroker:
        broker = redis_broker(make_config(broker=url), prefix=prefix, **options)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        await broker.close()


async def test_history_offsets_and_epoch_outlive_the_instance(make_broker: MakeRedisBroker) -> None:
    first = make_broker()
    stored = (await first.append([entry(ETL, "a"), entry(FAAS, "b")], ("p", 1))).events
    epoch = first.epoch
    await first.close()
    second = make_broker()
    assert await second.head() == stored[-1].seq
    assert second.epoch == epoch
    assert (await read_all(second, EVERYTHING, Cursor(epoch, 0))).events == stored
    later = (await second.append([entry(ETL, "c")], None)).events[0]
    assert (later.offset, later.seq) == (1, stored[-1].seq + 1)
    assert (await second.append([entry(ETL, "a"), entry(FAAS, "b")], ("p", 1))).duplicate


async def test_each_instance_delivers_every_event_once_in_order(
    make_broker: MakeRedisBroker,
) -> None:
    brokers = [make_broker(), make_broker(), make_broker()]
    received = [Received(b) for b in brokers]

    async def publish(n: int) -> list[Event]:
        broker = brokers[n % 3]
        return (await broker.append([entry(ETL, f"{n}"), entry(FAAS, f"{n}")], None)).events

    results = await asyncio.gather(*(publish(n) for n in range(30)))
    stored = sorted((e for events in results for e in events), key=lambda e: e.seq)
    for listener in received:
        assert await listener.count(60) == stored


async def test_a_key_is_a_duplicate_on_every_instance(make_broker: MakeRedisBroker) -> None:
    one, other = make_broker(), make_broker()
    first = await one.append([entry(ETL, "a")], ("producer", 3))
    again = await other.append([entry(ETL, "a")], ("producer", 3))
    assert again.duplicate
    assert [(e.offset, e.seq) for e in again.events] == [(e.offset, e.seq) for e in first.events]
    assert await other.head() == first.events[0].seq


async def test_a_cursor_from_one_instance_resumes_on_another(make_broker: MakeRedisBroker) -> None:
    one, other = make_broker(), make_broker()
    seen = (await one.append([entry(ETL, "seen")], None)).events[0]
    missed = (await one.append([entry(FAAS, "x"), entry(ETL, "y")], None)).events
    replay = await read_all(other, EVERYTHING, Cursor(one.epoch, seen.seq))
    assert replay.gaps == []
    assert replay.events == missed


# -- Redis goes away -----------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test only (it is stopped and started); no persistence."""
    with running_redis(tmp_path) as server:
        yield server


async def test_redis_down_fails_fast_then_everything_recovers(
    make_broker: MakeRedisBroker, own_redis: RedisServer
) -> None:
    broker = make_broker(own_redis.url)
    received = Received(broker)
    resyncs: list[float] = []
    broker.on_resync(lambda: resyncs.append(time.monotonic()))
    before = (await broker.append([entry(ETL, "before")], None)).events
    await received.count(1)
    old_epoch = broker.epoch
    own_redis.stop()
    started = time.monotonic()
    codes = []
    for _ in range(2):
        with pytest.raises(GatewayError) as refused:
            await broker.append([entry(ETL, "during")], ("p", 1))
        codes.append(refused.value.code)
    # The first append may go out on a pooled connection whose close this process has not
    # read yet: sent, so its outcome is unknown to the gateway, which says so. Once the
    # close is read nothing is sent, and the answer is "stored nothing".
    assert codes[0] in (Code.OUTCOME_UNKNOWN, Code.UNAVAILABLE)
    assert codes[1] is Code.UNAVAILABLE
    assert time.monotonic() - started < 1.0
    assert not await broker.ready()
    assert await broker.head() == before[0].seq  # a live-only stream can still start
    # Back without its data (no persistence): a new epoch, and live subscribers are told.
    own_redis.start()
    await _until_ready(broker)
    after = (await broker.append([entry(ETL, "after")], ("p", 1))).events
    assert broker.epoch != old_epoch
    assert resyncs
    assert [e.data for e in await received.count(2)] == [before[0].data, after[0].data]
    replay = await read_all(broker, EVERYTHING, Cursor(old_epoch, before[0].seq))
    assert [(g.reason, g.pattern) for g in replay.gaps] == [("reset", "logs:>")]
    assert replay.events == after


async def test_redis_back_with_its_data_resumes_without_a_resync(
    make_broker: MakeRedisBroker, tmp_path: Path
) -> None:
    with running_redis(tmp_path, persistent=True) as durable:
        broker = make_broker(durable.url)
        received = Received(broker)
        resyncs: list[int] = []
        broker.on_resync(lambda: resyncs.append(1))
        first = (await broker.append([entry(ETL, "1")], None)).events
        epoch = broker.epoch
        durable.stop()
        durable.start()
        await _until_ready(broker)
        second = (await broker.append([entry(ETL, "2")], None)).events
        assert broker.epoch == epoch
        assert await received.count(2) == first + second
        assert resyncs == []


async def _until_ready(broker: RedisBroker, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await broker.ready():
        assert time.monotonic() < deadline, "broker did not recover"
        await asyncio.sleep(0.05)


# -- an instance falls behind the feed -----------------------------------------------------


async def test_an_instance_cut_off_past_the_feed_resyncs_and_goes_on(
    make_broker: MakeRedisBroker, own_redis: RedisServer
) -> None:
    """A network partition of one instance, made with a Redis user that is switched off,
    while the others publish and the feed is trimmed past it."""
    admin = own_redis.client()
    admin.acl_setuser("cut", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all"])
    one = make_broker(own_redis.url)
    cut = make_broker(f"redis://cut:pw@127.0.0.1:{own_redis.port}/0")
    received = Received(cut)
    resyncs: list[int] = []
    cut.on_resync(lambda: resyncs.append(1))
    first = (await one.append([entry(ETL, "1")], None)).events
    await received.count(1)
    admin.acl_setuser("cut", enabled=False)
    admin.client_kill_filter(user="cut")
    missed = [(await one.append([entry(ETL, f"m{i}")], None)).events[0] for i in range(3)]
    (feed,) = admin.keys("*:feed")  # this Redis is the test's own
    admin.xtrim(feed, maxlen=1, approximate=False)
    admin.acl_setuser("cut", enabled=True)
    assert await received.count(2) == [first[0], missed[-1]]
    assert resyncs == [1]
    # What live delivery skipped is in history, where resuming subscribers find it.
    replay = await read_all(cut, EVERYTHING, Cursor(cut.epoch, first[0].seq))
    assert replay.events == missed
    assert replay.gaps == []


async def test_a_redis_error_retrying_cannot_fix_is_internal_and_logged_with_its_cause(
    make_broker: MakeRedisBroker, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    broker = make_broker()
    await broker.append([entry(ETL, "fine")], None)
    # The seq counter corrupted (a misconfiguration, another program's key): INCRBY fails.
    own = Redis.from_url(redis_server.url)
    await own.set(f"{broker._keys.seq}", "not a number")
    await own.aclose()
    with (
        caplog.at_level(logging.ERROR, logger="logs_gateway.redis"),
        pytest.raises(GatewayError) as failed,
    ):
        await broker.append([entry(ETL, "after")], None)
    assert failed.value.code is Code.INTERNAL  # not UNAVAILABLE: a retry would fail the same
    [record] = [r for r in caplog.records if r.getMessage() == "redis failed a command"]
    assert "not an integer" in record.error  # type: ignore[attr-defined]


@pytest.mark.parametrize("persistent", [False, True])
async def test_the_start_says_when_acks_would_not_survive_a_redis_restart(
    persistent: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running_redis(tmp_path, persistent=persistent) as own:
        broker = redis_broker(make_config(broker=own.url), prefix="durability")
        with caplog.at_level(logging.WARNING, logger="logs_gateway.redis"):
            await broker.head()
        await broker.close()
    warned = [r.getMessage() for r in caplog.records if "acknowledged entries" in r.getMessage()]
    assert warned == ([] if persistent else [warned[0]])
    if not persistent:
        assert "appendonly yes" in warned[0]
