"""What the NATS broker does beyond the shared contract (tests/test_broker_contract.py):
delivery by interest, subject escaping, the stream check at start, several writers of one
channel, and what a gateway sees while NATS is unreachable or its stream is new."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from gateway.app.brokers import nats_broker
from gateway.core.broker_nats import NatsBroker
from gateway.core.broker_nats_stream import StreamMismatch
from gateway.core.channels import parse_pattern
from gateway.core.cursor import Cursor
from gateway.core.errors import Code, GatewayError
from gateway.core.events import Entry, Event
from tests.broker_reads import read_all
from tests.conftest import make_config, wait_for
from tests.nats_cluster import NatsCluster, running_nats

_streams = itertools.count()
MakeNats = Callable[..., NatsBroker]


def entry(channel: str, message: str) -> Entry:
    return Entry(channel, 1_700_000_000_123_456_000, 9, message, "svc", {})


@pytest.fixture
async def make(nats_server: NatsCluster) -> AsyncIterator[MakeNats]:
    """Brokers on the session's nats-server, each call on the same fresh stream unless
    `stream` says otherwise."""
    made: list[NatsBroker] = []
    name = f"nats-test-{next(_streams)}"

    def build(url: str = nats_server.url, timeout: float = 2.0, **settings: Any) -> NatsBroker:
        settings.setdefault("nats_stream", name)
        broker = nats_broker(make_config(broker=url, **settings), timeout=timeout)
        made.append(broker)
        return broker

    yield build
    for broker in made:
        await broker.close()


def inbound(broker: NatsBroker) -> int:
    """Messages this broker's NATS connection has received (of any kind)."""
    client: Client = broker._nc
    return int(client.stats["in_msgs"])


async def test_a_gateway_receives_only_what_its_subscriptions_watch(make: MakeNats) -> None:
    writer, reader = make(), make()
    got: list[Event] = []
    reader.add_listener(got.extend)
    await reader.head()
    before = inbound(reader)
    for i in range(50):  # nobody watches: nothing reaches the reader's connection
        await writer.append([entry(f"logs:etl:ws1:run-{i}", "x")], None)
    await writer.head()
    await reader.head()  # a round trip of the reader's own after the last append
    assert inbound(reader) - before <= 2  # only the replies to its own two requests
    await reader.watch(parse_pattern("logs:faas:>"))
    await writer.append([entry("logs:etl:ws1:a", "unwatched"), entry("logs:faas:ws1:f", "w")], None)
    await wait_for(lambda: len(got) == 1)
    assert [e.channel for e in got] == ["logs:faas:ws1:f"]
    reader.unwatch(parse_pattern("logs:faas:>"))
    await asyncio.sleep(0)  # the unsubscribe is sent on the next loop turn
    await reader.head()
    await writer.append([entry("logs:faas:ws1:f", "after")], None)
    await writer.append([entry("logs:faas:ws1:g", "probe")], None)
    await reader.watch(parse_pattern("logs:faas:ws1:g"))
    await writer.append([entry("logs:faas:ws1:g", "seen")], None)
    await wait_for(lambda: len(got) == 2)
    assert [e.channel for e in got] == ["logs:faas:ws1:f", "logs:faas:ws1:g"]


async def test_a_dot_inside_a_segment_is_not_a_separator(make: MakeNats) -> None:
    broker = make()
    await broker.append([entry("logs:a.b:ws1", "dotted"), entry("logs:a:b:ws1", "plain")], None)
    start = Cursor(broker.epoch, 0)
    dotted = await read_all(broker, [parse_pattern("logs:a.b:>")], start)
    assert [e.channel for e in dotted.events] == ["logs:a.b:ws1"]
    plain = await read_all(broker, [parse_pattern("logs:a:*:ws1")], start)
    assert [e.channel for e in plain.events] == ["logs:a:b:ws1"]


async def test_a_stream_that_contradicts_the_settings_refuses_the_start(make: MakeNats) -> None:
    first = make(history_entries=1000, history_seconds=600)
    await first.open()
    other = make(history_entries=50, history_seconds=86400)
    with pytest.raises(StreamMismatch) as refused:
        await other.open()
    text = str(refused.value)
    assert "max_msgs_per_subject is 1000 where --history-entries asks for 50" in text
    assert "max_age is 600.0 where --history-seconds asks for 86400.0" in text
    assert not await other.ready()


async def test_several_writers_of_one_channel_share_its_offsets(make: MakeNats) -> None:
    writers = [make() for _ in range(4)]

    async def write(broker: NatsBroker, n: int) -> list[Event]:
        out: list[Event] = []
        for i in range(10):
            out += (await broker.append([entry("logs:etl:ws1:shared", f"{n}.{i}")], None)).events
        return out

    results = await asyncio.gather(*(write(b, n) for n, b in enumerate(writers)))
    events = sorted((e for r in results for e in r), key=lambda e: e.seq)
    assert [e.offset for e in events] == list(range(40))
    replay = await read_all(writers[0], [parse_pattern("logs:etl:>")], Cursor(writers[0].epoch, 0))
    assert [(e.offset, e.seq) for e in replay.events] == [(e.offset, e.seq) for e in events]


async def test_unreachable_nats_fails_fast_and_is_not_ready(make: MakeNats, tmp_path: Path) -> None:
    with running_nats(tmp_path / "one", 1) as cluster:
        broker = make(cluster.url, timeout=2.0)
        resynced: list[bool] = []
        broker.on_resync(lambda: resynced.append(True))
        await broker.append([entry("logs:etl:ws1:a", "before")], None)
        assert await broker.ready()
        cluster.kill(cluster.nodes[0])
        await wait_for(lambda: not broker._nc.is_connected, timeout=10)
        assert not await broker.ready()
        began = time.monotonic()
        with pytest.raises(GatewayError) as refused:
            await broker.append([entry("logs:etl:ws1:a", "during")], None)
        assert refused.value.code == Code.UNAVAILABLE
        assert time.monotonic() - began < 1.0  # at once, not after a timeout
        cluster.restart(cluster.nodes[0])
        await wait_for(lambda: bool(resynced), timeout=15)  # live subscribers resume
        await wait_for(lambda: broker._nc.is_connected, timeout=15)
        appended = await broker.append([entry("logs:etl:ws1:a", "after")], None)
        assert [e.offset for e in appended.events] == [1]  # history survived the restart


async def test_a_stream_created_again_is_a_new_epoch(make: MakeNats) -> None:
    broker = make()
    old = (await broker.append([entry("logs:etl:ws1:a", "old")], None)).events
    epoch = broker.epoch
    await broker._nc.jetstream().delete_stream(broker.spec.name)
    other = make()
    await other.open()  # creates it again
    replay = await read_all(other, [parse_pattern("logs:>")], Cursor(epoch, old[-1].seq))
    assert other.epoch != epoch
    assert [g.reason for g in replay.gaps] == ["reset"]


async def test_a_page_of_discovery_gets_only_the_channels_it_returns(
    make: MakeNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = make()
    await broker.open()
    for i in range(30):
        await broker.append([entry(f"logs:etl:run:{i:02d}", "x")], None)
    gets: list[str] = []
    ends = broker._channels._ends

    async def counted(name: str) -> Any:
        gets.append(name)
        return await ends(name)

    monkeypatch.setattr(broker._channels, "_ends", counted)
    everything = [parse_pattern("logs:>")]
    first = await broker.channels(everything, None, 5)
    assert [c.name for c in first] == [f"logs:etl:run:{i:02d}" for i in range(29, 24, -1)]
    assert len(gets) <= 6  # the page's channels, and one more at the page's edge
    second = await broker.channels(everything, first[-1].newest, 5)
    assert [c.name for c in second] == [f"logs:etl:run:{i:02d}" for i in range(24, 19, -1)]


async def test_lost_past_its_bound_is_a_stated_lower_bound(make: MakeNats) -> None:
    broker = make(history_entries=1)
    await broker.open()
    for i in range(4):
        channel = f"logs:etl:run:{i}"
        await broker.append([entry(channel, "a")], None)
        await broker.append([entry(channel, "b")], None)  # trims "a": one lost each
    everything = [parse_pattern("logs:>")]
    [counted] = await broker.lost(everything)
    assert (counted.lost, counted.channels) == (4, 4)
    bounded_broker = make(history_entries=1, nats_lost_channels=2)  # the same stream
    await bounded_broker.open()
    [bounded] = await bounded_broker.lost(everything)
    assert (bounded.reason, bounded.lost, bounded.channels) == ("expired", 2, 2)
    assert bounded_broker.usage().bounds_reached == {"lost_channels": 1}


async def test_a_listing_past_its_bound_is_refused_naming_it(make: MakeNats) -> None:
    broker = make(nats_listed_channels=3)
    await broker.open()
    for i in range(4):
        await broker.append([entry(f"logs:etl:run:{i}", "x")], None)
    with pytest.raises(GatewayError) as refused:
        await broker.channels([parse_pattern("logs:>")], None, 2)
    assert refused.value.code is Code.INVALID_ARGUMENT
    assert "would read at least 4 channels" in str(refused.value)
    assert "--nats-listed-channels" in str(refused.value)
    assert broker.usage().bounds_reached == {"listed_channels": 1}  # the metric's count
    # The patterns of one listing share the bound.
    halves = [parse_pattern("logs:etl:run:0"), parse_pattern("logs:etl:run:1")]
    halves += [parse_pattern("logs:etl:run:2"), parse_pattern("logs:etl:run:3")]
    with pytest.raises(GatewayError):
        await broker.channels(halves, None, 2)
    listed = await broker.channels(halves[:3], None, 5)
    assert sorted(c.name for c in listed) == [f"logs:etl:run:{i}" for i in range(3)]
