"""Channels created all day: memory and cost follow what is retained and what matches.

Cost is counted, not timed: the number of Python function calls an operation makes is the
same on every run and every machine, so "replaying one channel costs the same with 100,000
channels held as with 1,000" is an exact assertion here (the timings are in bench/).
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import pstats
import random
import tracemalloc
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.app.brokers import memory_broker
from gateway.core.broker import Gap
from gateway.core.broker_memory import MemoryBroker
from gateway.core.channels import parse_pattern
from gateway.core.cursor import Cursor
from gateway.core.events import Entry, Event
from gateway.core.hub import Hub
from gateway.core.index import ChannelIndex
from gateway.core.subscription import EventSubscription
from tests.broker_reads import read_all
from tests.conftest import make_config, wait_for


def entry(channel: str, message: str = "m" * 100) -> Entry:
    return Entry(channel, 1_700_000_000_000_000_000, 9, message, "svc", {"n": 1})


async def fill(broker: MemoryBroker, channels: list[str]) -> list[Event]:
    stored: list[Event] = []
    for start in range(0, len(channels), 500):  # batches, as publishers send them
        batch = [entry(c) for c in channels[start : start + 500]]
        stored += (await broker.append(batch, None)).events
    return stored


def calls(operation: Callable[[], Coroutine[Any, Any, Any]]) -> int:
    """Python function calls `operation` makes (it must not wait on anything)."""
    coroutine = operation()
    profile = cProfile.Profile()
    profile.enable()
    try:
        coroutine.send(None)
    except StopIteration:
        pass
    finally:
        profile.disable()
    return int(pstats.Stats(profile).total_calls)  # type: ignore[attr-defined]


async def test_a_churn_of_channels_leaves_no_memory_behind() -> None:
    broker = memory_broker(make_config(history_seconds=0.2))
    await fill(broker, ["logs:etl:ws1:warm-up"])

    async def round_of(n: int, name: str) -> int:
        await fill(broker, [f"logs:etl:ws1:{name}-{i}" for i in range(n)])
        peak = tracemalloc.get_traced_memory()[0]
        # Expired, then its record of losses forgotten: nothing is held for it.
        await wait_for(lambda: broker.usage().bytes == 0, timeout=10)
        return peak

    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        peak = await round_of(20_000, "first")
        gc.collect()
        after_first = tracemalloc.get_traced_memory()[0]
        await round_of(20_000, "second")
        gc.collect()
        after_second = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    growth = peak - start
    # What stays is the lookup table's size (a dict keeps its table), not the channels.
    assert after_first - start < 0.05 * growth, (after_first - start, growth)
    assert after_second - after_first < 0.01 * growth, (after_second - after_first, growth)
    assert broker.usage().channels == 0
    await broker.close()


async def test_history_stays_within_its_byte_bound_oldest_entries_first() -> None:
    bound = 2 * 1024 * 1024
    broker = memory_broker(make_config(max_history_bytes=bound, history_entries=100_000))
    published = 40_000
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for first in range(0, published, 500):  # nothing kept here: what is held is history
            batch = [entry(f"logs:etl:ws1:run-{i % 64}") for i in range(first, first + 500)]
            await broker.append(batch, None)
        held = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    usage = broker.usage()
    assert usage.bytes is not None and usage.entries is not None
    assert usage.bytes <= bound
    assert held <= 1.25 * bound, held
    assert usage.evicted == {"memory": published - usage.entries}
    # What is left is the newest of everything (seqs run 1..published); a cursor from the
    # start is told of the rest, in one gap placed after the newest entry lost.
    replay = await read_all(broker, [parse_pattern("logs:etl:>")], Cursor(broker.epoch, 0))
    lost = published - usage.entries
    assert [e.seq for e in replay.events] == list(range(lost + 1, published + 1))
    assert replay.gaps == [Gap("logs:etl:>", lost, "trimmed", 64, lost)]
    await broker.close()


async def test_replaying_one_channel_costs_the_same_with_100_000_channels_held() -> None:
    async def replay_cost(held: int) -> int:
        broker = memory_broker(make_config())
        await fill(broker, [f"logs:etl:ws{i % 100}:run-{i}" for i in range(held)])
        stored = await broker.append([entry("logs:etl:ws7:mine") for _ in range(10)], None)
        cursor = Cursor(broker.epoch, stored.events[4].seq)
        literal = [parse_pattern("logs:etl:ws7:mine")]
        cost = calls(lambda: read_all(broker, literal, cursor))
        assert (await read_all(broker, literal, cursor)).events == stored.events[5:]
        await broker.close()
        return cost

    small, large = await replay_cost(1_000), await replay_cost(100_000)
    assert large == small, (small, large)


async def test_a_wildcard_replay_visits_only_the_channels_it_matches() -> None:
    async def cost(held: int) -> tuple[int, int]:
        broker = memory_broker(make_config())
        # The workspace has 10 channels; the rest of what is held belongs to others.
        await fill(broker, [f"logs:etl:ws{i % 100}:run-{i}" for i in range(held)])
        mine = await fill(broker, [f"logs:faas:wsX:fn-{i}" for i in range(10)])
        cursor = Cursor(broker.epoch, mine[4].seq)
        pattern = [parse_pattern("logs:*:wsX:>")]
        found = (await read_all(broker, pattern, cursor)).events
        await broker.close()
        return calls(lambda: read_all(broker, pattern, cursor)), len(found)

    (small, found_small), (large, found_large) = await cost(1_000), await cost(100_000)
    assert found_small == found_large == 5
    assert large == small, (small, large)


async def test_routing_a_new_channel_costs_the_same_with_5_000_wildcard_patterns_open() -> None:
    async def route_cost(patterns: int) -> int:
        hub = Hub(epoch=lambda: "e", max_per_owner=100_000, max_streams=100_000)
        for i in range(patterns):
            texts = (f"logs:*:ws{i}:>", f"logs:etl:ws{i}:*")
            sub = EventSubscription(f"s{i}", tuple(map(parse_pattern, texts)), 0, f"o{i}", 10)
            await hub.add(sub)
        event = Event("logs:etl:ws-new:run-1", 0, 1, 9, b"{}")

        async def deliver() -> None:
            hub.deliver([event])
            hub.flush()

        return calls(deliver)

    few, many = await route_cost(10), await route_cost(2_500)  # 20 and 5,000 patterns
    assert many == few, (few, many)


def test_the_channel_index_finds_exactly_what_a_full_scan_finds() -> None:
    rng = random.Random(3)
    segments = ("etl", "faas", "w1", "w2", "r1", "r2")

    def name(wild: bool) -> str:
        parts = ["logs", *(rng.choice(segments) for _ in range(rng.randint(2, 4)))]
        if wild:
            parts[rng.randrange(1, len(parts))] = "*"
            if rng.random() < 0.4:
                parts[-1] = ">"
        return ":".join(parts)

    index: ChannelIndex[str] = ChannelIndex()
    held: set[str] = set()
    for _ in range(400):
        channel = name(wild=False)
        index.put(channel, channel)
        held.add(channel)
    for channel in rng.sample(sorted(held), 150):
        assert index.pop(channel) == channel
        held.discard(channel)
    assert len(index) == len(held)
    assert sorted(index.values()) == sorted(held)
    for _ in range(300):
        pattern = parse_pattern(name(wild=rng.random() < 0.7))
        assert sorted(index.match(pattern)) == sorted(c for c in held if pattern.matches(c))
    for channel in list(held):
        index.pop(channel)
    assert len(index) == 0 and not list(index.values())


def test_a_match_after_a_seq_finds_exactly_the_channels_touched_since() -> None:
    rng = random.Random(5)
    for in_order in (True, False):  # a walk may stop early only while touches were in order
        index: ChannelIndex[str] = ChannelIndex()
        touched: dict[str, int] = {}
        seqs = list(range(1, 2001))
        if not in_order:
            rng.shuffle(seqs)
        channel = ""
        for seq in seqs:
            if rng.random() < 0.6:  # else the same channel again (a busy one: put after put)
                channel = (
                    f"logs:{rng.choice(('etl', 'faas'))}:ws{rng.randrange(5)}:r{rng.randrange(60)}"
                )
            if channel in touched and rng.random() < 0.05:  # gone, then back
                assert index.pop(channel) == channel
                del touched[channel]
            index.put(channel, channel, seq)
            touched[channel] = max(touched.get(channel, 0), seq)
        for _ in range(200):
            pattern = parse_pattern(
                rng.choice(("logs:>", "logs:*:ws1:>", "logs:etl:*:*", "logs:faas:ws2:r7"))
            )
            after = rng.randrange(0, 2001)
            expected = {c for c, s in touched.items() if s > after and pattern.matches(c)}
            assert set(index.match(pattern, after)) == expected


def test_newest_first_walks_the_channels_by_their_newest_seq_while_the_index_changes() -> None:
    rng = random.Random(7)
    for in_order in (True, False):  # a node touched out of seq order is sorted instead
        index: ChannelIndex[str] = ChannelIndex()
        touched: dict[str, int] = {}
        seqs = list(range(1, 3001))
        if not in_order:
            rng.shuffle(seqs)
        for seq in seqs:
            channel = (
                f"logs:{rng.choice(('etl', 'faas'))}:ws{rng.randrange(5)}:r{rng.randrange(80)}"
            )
            index.put(channel, channel, seq)
            touched[channel] = max(touched.get(channel, 0), seq)
        for text in ("logs:>", "logs:*:ws1:>", "logs:etl:*:*", "logs:faas:ws2:r7"):
            pattern = parse_pattern(text)
            expected = sorted(
                ((s, c) for c, s in touched.items() if pattern.matches(c)), reverse=True
            )
            assert list(index.newest_first(pattern)) == expected
        # A walk under way while channels are touched, added and forgotten: still newest
        # first, and each channel it had not reached yet comes no lower than it was.
        walk = index.newest_first(parse_pattern("logs:>"))
        before = dict(touched)
        seen = [next(walk) for _ in range(20)]
        for seq in range(3001, 3201):
            channel = f"logs:etl:ws{rng.randrange(5)}:r{rng.randrange(90)}"
            index.put(channel, channel, seq)
        for channel in rng.sample(sorted(before), 10):
            index.pop(channel)
        seen += list(walk)
        assert [s for s, _ in seen] == sorted((s for s, _ in seen), reverse=True)
        assert sorted(c for _, c in seen) == sorted(before)
        assert all(s >= before[c] for s, c in seen)


async def test_the_expiry_timer_stops_when_nothing_is_held() -> None:
    broker = memory_broker(make_config(history_seconds=0.1))
    await fill(broker, ["logs:etl:ws1:a"])
    await wait_for(lambda: broker.usage().bytes == 0)
    await asyncio.sleep(0)
    assert broker._timer is None
    await broker.close()
