"""The memory broker's reads back over a few channels among many: merged from those
channels (gateway/core/memory_merge.py) in slices, with the loop running publishes between
them, and still exactly the retained matching entries, newest pages first."""

from __future__ import annotations

import asyncio

import pytest

from gateway.app.brokers import memory_broker
from gateway.core import memory_merge
from gateway.core.broker import Broker, PageSize
from gateway.core.channels import parse_pattern
from gateway.core.events import Entry, Event
from gateway.core.seq_index import SeqIndex
from tests.conftest import make_config

RUN = parse_pattern("logs:etl:ws1:>")


def entry(channel: str, n: int) -> Entry:
    return Entry(channel, 1_700_000_000_000_000_000, 9, f"m{n}", "svc", {})


async def fill(broker: Broker, matching: int, others: int, rounds: int) -> list[Event]:
    """`rounds` entries on each of `matching` channels under RUN, each between entries of
    `others` channels that do not match; the matching events stored."""
    stored: list[Event] = []
    for r in range(rounds):
        batch = []
        for i in range(max(matching, others)):
            if i < matching:
                batch.append(entry(f"logs:etl:ws1:run-{i}", r))
            if i < others:
                batch.append(entry(f"logs:faas:ws{i % 10}:fn-{i}", r))
        stored += [e for e in (await broker.append(batch, None)).events if RUN.matches(e.channel)]
    return stored


async def read_back(broker: Broker, before: int | None, size: PageSize) -> list[list[Event]]:
    return [page.events async for page in broker.read_before([RUN], before, size)]


async def test_a_read_back_over_few_channels_among_many_returns_exactly_theirs() -> None:
    broker = memory_broker(make_config(history_entries=1000))
    stored = await fill(broker, 60, 3_000, 5)
    pages = await read_back(broker, None, PageSize(entries=70))
    assert [e for page in reversed(pages) for e in page] == stored
    assert all(len(page) <= 70 for page in pages)
    middle = stored[len(stored) // 2].seq
    older = await read_back(broker, middle, PageSize(entries=70))
    assert [e for page in reversed(older) for e in page] == [e for e in stored if e.seq < middle]


async def test_entries_evicted_while_a_merged_read_yields_are_never_returned_or_repeated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Publishes run between the read's slices; the channels hold 5 entries each, so every
    publish to them evicts their oldest: a page has each event once, in seq order, and
    only events that were stored on the matching channels."""
    monkeypatch.setattr(memory_merge, "MERGE_SLICE", 4)
    broker = memory_broker(make_config(history_entries=5))
    stored = await fill(broker, 60, 3_000, 5)
    publishing = True

    async def publish() -> None:
        n = 0
        while publishing:
            n += 1
            await broker.append([entry(f"logs:etl:ws1:run-{n % 60}", 100 + n)], None)
            await asyncio.sleep(0)

    publisher = asyncio.create_task(publish())
    try:
        pages = await read_back(broker, stored[-1].seq + 1, PageSize(entries=40))
    finally:
        publishing = False
        await publisher
    got = [e for page in reversed(pages) for e in page]
    assert [e.seq for e in got] == sorted({e.seq for e in got})
    assert {e.seq for e in got} <= {e.seq for e in stored}
    assert got and all(len(page) <= 40 for page in pages)


def test_a_walk_back_goes_on_by_seq_when_a_trim_moves_the_runs_under_it() -> None:
    runs: SeqIndex[str] = SeqIndex()
    for seq in range(1, 6001, 2):  # 3,000 runs of two seqs each
        runs.add(seq, f"ch{seq}")
    walk = runs.backward(6001)
    first = [next(walk) for _ in range(10)]
    assert runs.trim(4001, 6000) > 1024  # the front is deleted: indices move
    rest = list(walk)
    got = first + rest
    assert [(lo, hi) for _, lo, hi in got] == [(s, s + 1) for s in range(5999, 4000, -2)]
    assert all(owner == f"ch{lo}" for owner, lo, _ in got)


async def test_what_went_before_the_start_counts_every_channel_of_many() -> None:
    """`lost` counts channel by channel, letting the loop run between slices of them."""
    broker = memory_broker(make_config(history_entries=1))
    first = await fill(broker, 1_200, 0, 1)
    await fill(broker, 1_200, 0, 1)  # each channel keeps 1: its first entry is lost
    [gap] = await broker.lost([RUN])
    assert (gap.lost, gap.channels, gap.reason) == (1_200, 1_200, "trimmed")
    assert gap.seq == first[-1].seq
