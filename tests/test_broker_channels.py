"""Broker.channels and Broker.lost (gateway/core/broker.py), held against every broker of
the contract (the same `make_broker` fixture as tests/test_broker_contract.py, so each
broker added there is held to these too)."""

from __future__ import annotations

import asyncio
import time

from gateway.core.channels import parse_pattern
from tests.test_broker_contract import ETL, ETL2, FAAS, MakeBroker, entry, is_nats
from tests.test_broker_contract import make_broker as make_broker  # the fixture

ALL = [parse_pattern("logs:>")]


async def test_channels_lists_each_holder_once_newest_activity_first(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker()
    before = time.time()
    await broker.append([entry(ETL, "a"), entry(FAAS, "b"), entry(ETL, "c")], None)
    last = (await broker.append([entry(ETL2, "d")], None)).events[0]
    found = await broker.channels([parse_pattern("logs:etl:>"), *ALL], None, 10)
    listed = [(c.name, c.entries) for c in found]
    if is_nats(broker):  # one batch's channels are stored in no set order (DESIGN §3.2)
        assert listed[0] == (ETL2, 1) and sorted(listed[1:]) == [(ETL, 2), (FAAS, 1)]
    else:
        assert listed == [(ETL2, 1), (ETL, 2), (FAAS, 1)]
        assert found[1].newest == last.seq - 1
    assert found[0].newest == last.seq
    assert all(before - 1 <= c.stored_at <= time.time() + 1 for c in found)
    # Only what the patterns match.
    assert [c.name for c in await broker.channels([parse_pattern(FAAS)], None, 10)] == [FAAS]
    assert await broker.channels([parse_pattern("logs:nothing:>")], None, 10) == []


async def test_channels_pages_by_activity_without_repeats_or_holes(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker()
    names = [f"logs:svc:ws1:run{i}" for i in range(25)]
    for name in names:
        await broker.append([entry(name, "x")], None)
    listed: list[str] = []
    before = None
    while page := await broker.channels(ALL, before, 10):
        assert len(page) <= 10
        listed += [c.name for c in page]
        before = page[-1].newest
    assert listed == names[::-1]


async def test_channels_leaves_out_a_channel_whose_entries_expired(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker(history_seconds=1.0)  # what a stall would have to pass
    await broker.append([entry(ETL, "old")], None)
    await asyncio.sleep(1.5)
    await broker.append([entry(FAAS, "new")], None)
    assert [c.name for c in await broker.channels(ALL, None, 10)] == [FAAS]


async def test_lost_counts_what_went_before_the_oldest_retained_entries(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker(history_entries=2)
    entries = [entry(ETL, f"e{i}") for i in range(5)]
    if is_nats(broker):  # NATS bounds a channel's messages: one entry a batch
        stored = [(await broker.append([e], None)).events[0] for e in entries]
    else:
        stored = (await broker.append(entries, None)).events
    await broker.append([entry(FAAS, "f")], None)
    gaps = await broker.lost([parse_pattern("logs:etl:>"), parse_pattern(FAAS)])
    found = [(g.pattern, g.lost, g.reason, g.channels, g.seq) for g in gaps]
    if not is_nats(broker):
        assert found == [("logs:etl:>", 3, "trimmed", 1, stored[2].seq)]
        assert await broker.lost([parse_pattern(FAAS)]) == []
        return
    # NATS counts a channel's current life only: once the stream has let any message go,
    # every pattern's count is a lower bound (DESIGN §3.2, "On NATS").
    assert found == [(FAAS, 0, "expired", 0, 0), ("logs:etl:>", 3, "expired", 1, stored[2].seq)]


async def test_a_page_of_channels_is_the_newest_among_many(make_broker: MakeBroker) -> None:
    broker = make_broker()
    names = [f"logs:svc:ws{i % 3}:run{i}" for i in range(300)]
    for start in range(0, 300, 100):
        await broker.append([entry(n, "x") for n in names[start : start + 100]], None)
    await broker.append([entry(names[5], "again")], None)  # touched last: first
    page = await broker.channels([parse_pattern("logs:svc:*:>")], None, 4)
    if is_nats(broker):  # one batch's channels are stored in no set order (DESIGN §3.2)
        assert page[0].name == names[5] and {c.name for c in page[1:]} <= set(names[200:])
        return
    assert [c.name for c in page] == [names[5], names[299], names[298], names[297]]
    second = await broker.channels([parse_pattern("logs:svc:ws1:>")], page[-1].newest, 3)
    assert [c.name for c in second] == [names[295], names[292], names[289]]
