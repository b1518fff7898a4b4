"""The Broker protocol's guarantees (gateway/core/broker.py), held against every broker.

Each test names one guarantee of a docstring in the protocol and runs on the memory broker,
on the Redis broker (a private redis-server, a fresh key prefix per test) and on the NATS
broker (a private nats-server, a fresh stream per test). Where the protocol states a weaker
form of a guarantee on NATS, the test holds NATS to that form (`is_nats`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateway.app.brokers import memory_broker, nats_broker, redis_broker
from gateway.core.broker import Broker, Gap, PageSize, Resyncing
from gateway.core.broker_nats import NatsBroker
from gateway.core.broker_redis import RedisBroker
from gateway.core.catch_up import CatchUp, catch_up
from gateway.core.channels import parse_pattern
from gateway.core.cursor import MAX_SEQ, Cursor, decode_cursor, encode_cursor
from gateway.core.events import Entry, Event, make_event
from tests.broker_reads import read_all, tail
from tests.conftest import make_config, wait_for

ETL = "logs:etl:ws1:wf1"
ETL2 = "logs:etl:ws1:wf2"
FAAS = "logs:faas:ws1:fn1"
_prefixes = itertools.count()

MakeBroker = Callable[..., Broker]


def entry(channel: str, message: str, severity: int = 9) -> Entry:
    return Entry(channel, 1_700_000_000_123_456_000, severity, message, "svc", {"n": 1})


@pytest.fixture(params=["memory", "redis", "nats"])
async def make_broker(request: pytest.FixtureRequest) -> AsyncIterator[MakeBroker]:
    """Builds brokers of the parametrized kind; limits as settings (history_entries=3)."""
    made: list[Broker] = []
    prefix = f"contract{next(_prefixes)}"

    def make(**limits: Any) -> Broker:
        broker: Broker
        if request.param == "memory":
            broker = memory_broker(make_config(**limits))
        elif request.param == "redis":
            url = request.getfixturevalue("redis_server").url
            broker = redis_broker(make_config(broker=url, **limits), prefix=prefix)
        else:
            url = request.getfixturevalue("nats_server").url
            config = make_config(broker=url, nats_stream=f"{prefix}-{id(made)}", **limits)
            broker = nats_broker(config)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        await broker.close()


def is_nats(broker: Broker) -> bool:
    return isinstance(broker, NatsBroker)


def by_seq(events: list[Event]) -> list[Event]:
    return sorted(events, key=lambda e: e.seq)


def assert_loss(broker: Broker, gaps: list[Gap], exact: Gap, before: int) -> None:
    """`gaps` is the one exact gap; on NATS it may instead be an "expired" one (when the
    loss left nothing in the stream): at most the exact count, placed after the loss and
    before `before` (DESIGN §3.2, "On NATS")."""
    if gaps == [exact] or not is_nats(broker):
        assert gaps == [exact]
        return
    [gap] = gaps
    assert gap.pattern == exact.pattern and gap.reason == "expired"
    assert gap.lost <= exact.lost and exact.seq <= gap.seq < before


class Received:
    """A listener that keeps every batch it is given (of every channel: it watches all)."""

    def __init__(self, broker: Broker) -> None:
        self.batches: list[list[Event]] = []
        broker.add_listener(self.batches.append)

    @classmethod
    async def watching(cls, broker: Broker) -> Received:
        received = cls(broker)
        await broker.watch(parse_pattern("logs:>"))
        return received

    @property
    def events(self) -> list[Event]:
        return [e for batch in self.batches for e in batch]

    async def count(self, n: int) -> list[Event]:
        await wait_for(lambda: len(self.events) >= n)
        return self.events


async def pages(start: CatchUp) -> list[Event]:
    """Every event of a catch-up's pages."""
    events: list[Event] = []
    while (page := await start.next_page()) is not None:
        events += page.events
    return events


def seqs(events: list[Event]) -> list[int]:
    return [e.seq for e in events]


# -- append --------------------------------------------------------------------------------


async def test_append_assigns_dense_offsets_per_channel_and_one_seq_order(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker()
    first = await broker.append([entry(ETL, "a"), entry(FAAS, "b"), entry(ETL, "c")], None)
    second = await broker.append([entry(FAAS, "d"), entry(ETL, "e")], None)
    events = first.events + second.events
    assert [(e.channel, e.offset) for e in events] == [
        (ETL, 0),
        (FAAS, 0),
        (ETL, 1),
        (FAAS, 1),
        (ETL, 2),
    ]
    assert len(set(seqs(events))) == 5
    assert max(seqs(first.events)) < min(seqs(second.events))  # in the order stored
    for channel in (ETL, FAAS):  # and, per channel, in the order of its offsets
        mine = [e.seq for e in events if e.channel == channel]
        assert mine == sorted(mine)
    if not is_nats(broker):  # dense, and in the batch's order (NATS: see Broker.append)
        assert seqs(events) == list(range(seqs(events)[0], seqs(events)[0] + 5))
    assert not first.duplicate
    assert not second.duplicate


async def test_events_carry_the_bytes_make_event_gives(make_broker: MakeBroker) -> None:
    broker = make_broker()
    entries = [entry(ETL, 'quote " newline \n offset":0,', 17), entry(FAAS, "plain")]
    appended = await broker.append(entries, None)
    replayed = await read_all(broker, [parse_pattern("logs:>")], Cursor(broker.epoch, 0))
    assert appended.events == [
        make_event(e, s.offset, s.seq) for e, s in zip(entries, appended.events, strict=True)
    ]
    assert replayed.events == by_seq(appended.events)


async def test_append_returns_once_history_holds_the_entries(make_broker: MakeBroker) -> None:
    broker = make_broker()
    appended = await broker.append([entry(ETL, "a"), entry(ETL2, "b")], None)
    replay = await read_all(
        broker, [parse_pattern(ETL), parse_pattern(ETL2)], Cursor(broker.epoch, 0)
    )
    assert replay.events == by_seq(appended.events)
    assert replay.gaps == []


async def test_a_key_seen_before_returns_the_first_result_and_stores_nothing(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker()
    received = await Received.watching(broker)
    batch = [entry(ETL, "a"), entry(FAAS, "b")]
    first = await broker.append(batch, ("producer-1", 7))
    again = await broker.append(batch, ("producer-1", 7))
    assert again.duplicate
    assert [(e.channel, e.offset, e.seq) for e in again.events] == [
        (e.channel, e.offset, e.seq) for e in first.events
    ]
    assert await broker.head() == max(seqs(first.events))
    # The same sequence from another producer, and the next sequence, are new batches.
    other = await broker.append(batch, ("producer-2", 7))
    following = await broker.append(batch, ("producer-1", 8))
    assert not other.duplicate
    assert not following.duplicate
    everything = by_seq(first.events + other.events + following.events)
    assert await received.count(6) == everything
    replay = await read_all(broker, [parse_pattern("logs:>")], Cursor(broker.epoch, 0))
    assert replay.events == everything


async def test_an_empty_batch_stores_nothing_and_its_key_is_remembered(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker()
    assert (await broker.append([], ("p", 1))).events == []
    again = await broker.append([], ("p", 1))
    # NATS stores no message for it, so has nothing to recognise; the answer is the same.
    assert again.duplicate != is_nats(broker)
    assert again.events == []
    assert await broker.head() == 0


# -- head ----------------------------------------------------------------------------------


async def test_head_is_zero_when_empty_then_the_newest_seq(make_broker: MakeBroker) -> None:
    broker = make_broker()
    assert await broker.head() == 0
    appended = await broker.append([entry(ETL, "a"), entry(FAAS, "b")], None)
    assert await broker.head() == max(seqs(appended.events))


# -- replay --------------------------------------------------------------------------------


async def test_replay_returns_what_follows_the_cursor_on_matching_channels_in_seq_order(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker()
    stored: list[Event] = []
    for i in range(4):
        batch = [entry(ETL, f"etl {i}"), entry(FAAS, f"faas {i}"), entry(ETL2, f"etl2 {i}")]
        stored += (await broker.append(batch, None)).events
    cursor = Cursor(broker.epoch, stored[4].seq)
    later = by_seq([e for e in stored if e.seq > cursor.seq])
    replay = await read_all(broker, [parse_pattern("logs:etl:>")], cursor)
    assert replay.gaps == []
    assert replay.events == [e for e in later if e.channel != FAAS]
    both = await read_all(broker, [parse_pattern(FAAS), parse_pattern(ETL2)], cursor)
    assert both.events == [e for e in later if e.channel != ETL]
    assert (await read_all(broker, [parse_pattern("logs:none:>")], cursor)).events == []


async def test_replay_reports_exactly_what_trimming_by_length_lost(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker(history_entries=3)
    stored = [(await broker.append([entry(ETL, f"m{i}")], None)).events[0] for i in range(6)]
    stored.append((await broker.append([entry(FAAS, "other")], None)).events[0])
    everything = [parse_pattern("logs:>")]
    # Kept: offsets 3, 4, 5 of ETL. A cursor before them lost what lies between.
    for cursor_at, lost in ((0, 3), (stored[0].seq, 2), (stored[1].seq, 1), (stored[2].seq, 0)):
        replay = await read_all(broker, everything, Cursor(broker.epoch, cursor_at))
        gap = Gap("logs:>", lost, "trimmed", channels=1, seq=stored[2].seq)
        if lost:
            assert_loss(broker, replay.gaps, gap, before=stored[3].seq)
        else:
            assert replay.gaps == []
        assert replay.events == stored[3:]


async def test_replay_reports_what_trimming_by_age_lost(make_broker: MakeBroker) -> None:
    # A window a stall of the loaded machine cannot pass between the new entry's append
    # and the read (0.3 s did, and the new entry had expired too).
    broker = make_broker(history_seconds=1.0)
    old = await broker.append([entry(ETL, "old 1"), entry(ETL, "old 2")], None)
    await asyncio.sleep(1.5)
    new = await broker.append([entry(FAAS, "new")], None)
    replay = await read_all(broker, [parse_pattern("logs:>")], Cursor(broker.epoch, 0))
    exact = Gap("logs:>", 2, "trimmed", channels=1, seq=old.events[-1].seq)
    assert_loss(broker, replay.gaps, exact, before=new.events[0].seq)
    assert replay.events == new.events
    after_old = Cursor(broker.epoch, old.events[-1].seq)
    assert (await read_all(broker, [parse_pattern(ETL)], after_old)).gaps == []


async def test_a_cursor_of_another_epoch_gets_a_reset_and_everything_retained(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker(history_entries=2)
    stored = [(await broker.append([entry(ETL, f"m{i}")], None)).events[0] for i in range(3)]
    other = "0" if broker.epoch != "0" else "1"
    patterns = [parse_pattern(ETL), parse_pattern("logs:faas:>")]
    replay = await read_all(broker, patterns, Cursor(other, stored[-1].seq))
    assert replay.gaps == [Gap(ETL, 0, "reset"), Gap("logs:faas:>", 0, "reset")]
    assert replay.events == stored[1:]


async def test_one_gap_per_pattern_counts_the_loss_over_every_channel_it_matched(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker(history_entries=1)
    runs = [f"logs:etl:ws1:run-{i}" for i in range(50)]

    async def two(channel: str) -> list[Event]:  # one append each (NATS bounds messages)
        return [(await broker.append([entry(channel, m)], None)).events[0] for m in "ab"]

    first = [await two(c) for c in runs]
    other = await two(FAAS)
    patterns = [parse_pattern("logs:etl:ws1:>"), parse_pattern("logs:*:ws1:>")]
    replay = await read_all(broker, patterns, Cursor(broker.epoch, 0))
    # A channel matched by both patterns is counted (and replayed) once, under the first.
    # (On NATS, a cursor older than the stream's first message: "expired", DESIGN §3.2.)
    newest_etl = first[-1][0].seq
    reason = "expired" if is_nats(broker) else "trimmed"
    assert replay.gaps == [
        Gap("logs:etl:ws1:>", 50, reason, channels=50, seq=newest_etl),
        Gap("logs:*:ws1:>", 1, reason, channels=1, seq=other[0].seq),
    ]
    assert replay.events == [events[1] for events in first] + other[1:]
    # Resuming from a gap's seq reports only what was lost after it.
    again = await read_all(broker, patterns, Cursor(broker.epoch, newest_etl))
    assert [(g.pattern, g.lost) for g in again.gaps] == [("logs:*:ws1:>", 1)]


# -- paging --------------------------------------------------------------------------------


def channels_for(spread: int) -> list[str]:
    """`spread` channels under logs:etl: (a read merges a few itself, walks for many)."""
    return [f"logs:etl:ws1:run-{i}" for i in range(spread)]


@pytest.mark.parametrize("spread", [3, 50])
async def test_pages_hold_at_most_their_bounds_and_every_event_once(
    make_broker: MakeBroker, spread: int
) -> None:
    broker = make_broker()
    names = channels_for(spread)
    stored: list[Event] = []
    for i in range(300):  # runs of several entries of one channel, and single entries
        batch = [
            entry(names[i % spread], f"m{i}.{k}" + "x" * (i % 7) * 50) for k in range(i % 3 + 1)
        ]
        stored += (await broker.append(batch, None)).events
    size = PageSize(entries=7, bytes=2_000)
    pages = [
        p
        async for p in broker.read_after(
            [parse_pattern("logs:etl:>")], Cursor(broker.epoch, 0), size
        )
    ]
    assert [e for p in pages for e in p.events] == stored
    assert [p.end for p in pages] == [False] * (len(pages) - 1) + [True]
    assert pages[-1].next == stored[-1].seq
    for page in pages:
        assert 1 <= len(page.events) <= 7 or page.end
        # Past the byte bound only by the event that crossed it.
        assert sum(len(e.data) for e in page.events[:-1]) < 2_000
        assert page.gaps == []
    # Each page's `next` resumes exactly where it ended.
    for page in pages[:-1]:
        rest = await read_all(
            broker, [parse_pattern("logs:etl:>")], Cursor(broker.epoch, page.next)
        )
        assert rest.events == [e for e in stored if e.seq > page.next]


async def test_a_page_may_end_inside_one_appends_run_of_one_channel(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker()
    run = (await broker.append([entry(ETL, f"m{i}") for i in range(10)], None)).events
    reader = broker.read_after([parse_pattern(ETL)], Cursor(broker.epoch, 0), PageSize(entries=4))
    first = await anext(reader)
    assert first.events == run[:4] and first.next == run[3].seq and not first.end
    await reader.aclose()
    rest = await read_all(
        broker, [parse_pattern(ETL)], Cursor(broker.epoch, first.next), PageSize(entries=4)
    )
    assert rest.events == run[4:]


@pytest.mark.parametrize("spread", [3, 50])
async def test_gaps_go_in_the_page_that_reaches_them_and_add_up_across_pages(
    make_broker: MakeBroker, spread: int
) -> None:
    broker = make_broker(history_entries=2)
    names = channels_for(spread)
    stored: list[Event] = []
    for rnd in range(3):  # each channel keeps its newest 2 of 3
        for name in names:
            stored += (await broker.append([entry(name, f"r{rnd}")], None)).events
    everything = [parse_pattern("logs:etl:>")]
    size = PageSize(entries=5)
    pages = [p async for p in broker.read_after(everything, Cursor(broker.epoch, 0), size)]
    kept = [e for e in stored if e.seq > stored[spread - 1].seq]
    assert [e for p in pages for e in p.events] == kept
    gaps = [g for p in pages for g in p.gaps]
    assert sum(g.lost for g in gaps) == spread
    # On NATS a cursor older than the stream's front gets its count as "expired" (§3.2).
    reasons = {"trimmed", "expired"} if is_nats(broker) else {"trimmed"}
    assert all(g.reason in reasons and g.pattern == "logs:etl:>" for g in gaps)
    for page in pages:  # ids never go back: a gap is placed among the events by its seq
        ids = [item.seq for item in page.in_order()]
        assert ids == sorted(ids)
        assert all(g.seq <= page.next for g in page.gaps)
    # From any page's end, only what was lost after it.
    for page in pages:
        later = await read_all(broker, everything, Cursor(broker.epoch, page.next), size)
        assert sum(g.lost for g in later.gaps) == len(
            [e for e in stored[:spread] if e.seq > page.next]
        )


@pytest.mark.parametrize("spread", [3, 50])
async def test_a_read_ends_where_it_began_and_reports_what_is_lost_meanwhile(
    make_broker: MakeBroker, spread: int
) -> None:
    broker = make_broker(history_entries=5)
    names = channels_for(spread)
    mine = (await broker.append([entry(ETL, f"m{i}") for i in range(5)], None)).events
    others = (await broker.append([entry(n, "o") for n in names], None)).events
    patterns = [parse_pattern(ETL), parse_pattern("logs:etl:ws1:>")]
    reader = broker.read_after(patterns, Cursor(broker.epoch, 0), PageSize(entries=2))
    first = await anext(reader)
    assert first.events == mine[:2]
    # Meanwhile: three more entries push three of ETL's out (one not yet sent), and more.
    later = (await broker.append([entry(ETL, f"n{i}") for i in range(3)], None)).events
    rest = [p async for p in reader]
    sent = first.events + [e for p in rest for e in p.events]
    assert rest[-1].end and rest[-1].next == max(seqs(others))  # where the read began
    assert not set(seqs(sent)) & set(seqs(later))  # later entries come live, not in the read
    lost = sum(g.lost for p in rest for g in p.gaps if g.pattern == ETL)
    # Every entry of ETL is sent or counted lost: none skipped in silence.
    assert len([e for e in sent if e.channel == ETL]) + lost == 5
    assert mine[3:] == [e for e in sent if e in mine[3:]]
    assert [e for e in sent if e.channel != ETL] == by_seq(others)


@pytest.mark.parametrize("spread", [3, 50])
async def test_reads_before_go_back_page_by_page_to_the_start(
    make_broker: MakeBroker, spread: int
) -> None:
    broker = make_broker()
    names = channels_for(spread)
    stored: list[Event] = []
    for i in range(120):
        batch = [entry(names[i % spread], f"m{i}", 9 + 4 * (i % 2)), entry(FAAS, "other")]
        stored += (await broker.append(batch, None)).events
    etl = [parse_pattern("logs:etl:>")]
    wanted = [e for e in stored if e.channel != FAAS]
    pages = [p async for p in broker.read_before(etl, None, PageSize(entries=9))]
    assert [e for p in reversed(pages) for e in p.events] == wanted
    assert [p.end for p in pages] == [False] * (len(pages) - 1) + [True]
    for page in pages:
        assert len(page.events) <= 9 and page.gaps == []
        assert [e.seq for e in page.events] == sorted(e.seq for e in page.events)
    # From a page's `next` back, and with a severity floor.
    middle = pages[2].next
    older = [
        e async for p in broker.read_before(etl, middle, PageSize(entries=9)) for e in p.events
    ]
    assert sorted(older, key=lambda e: e.seq) == [e for e in wanted if e.seq < middle]
    warn = [p async for p in broker.read_before(etl, None, PageSize(entries=1000), 13)]
    assert [e for p in warn for e in p.events] == [e for e in wanted if e.severity >= 13]


# -- tail ----------------------------------------------------------------------------------


async def test_tail_is_the_newest_matching_entries_across_channels_oldest_first(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker()
    stored: list[Event] = []
    for i in range(6):
        batch = [
            entry(ETL, f"etl {i}", 9 + 4 * (i % 2)),
            entry(FAAS, f"faas {i}"),
            entry(ETL2, f"b {i}"),
        ]
        stored += (await broker.append(batch, None)).events
    etl = [parse_pattern("logs:etl:>")]
    # In seq order: NATS stores a batch's channels in no set order (docs/DESIGN.md).
    stored.sort(key=lambda e: e.seq)
    wanted = [e for e in stored if e.channel != FAAS]
    assert await tail(broker, etl, 5, 0) == wanted[-5:]
    assert await tail(broker, etl, 100, 0) == wanted  # all there is, no more
    warn = [e for e in wanted if e.severity >= 13]
    assert await tail(broker, etl, 2, 13) == warn[-2:]
    both = [parse_pattern(ETL), parse_pattern("logs:*:ws1:>")]  # overlapping: each entry once
    assert await tail(broker, both, 4, 0) == stored[-4:]
    assert await tail(broker, [parse_pattern("logs:none:>")], 5, 0) == []


async def test_a_tail_start_is_followed_live_with_nothing_twice(make_broker: MakeBroker) -> None:
    broker = make_broker()
    old = (await broker.append([entry(ETL, f"m{i}") for i in range(5)], None)).events
    start = await catch_up(broker, [parse_pattern(ETL)], None, tail=3)
    assert await pages(start) == old[-3:] and start.gaps == []
    assert start.last == old[-1].seq  # live events are those after it
    # A cursor wins over tail: the resume is exact.
    resumed = await catch_up(broker, [parse_pattern(ETL)], Cursor(broker.epoch, old[0].seq), 3)
    assert await pages(resumed) == old[1:]


# -- the channel lifecycle ------------------------------------------------------------------


async def test_an_expired_channel_is_forgotten_and_its_loss_still_counted(
    make_broker: MakeBroker,
) -> None:
    # One batch, so all 100 channels hold their entry from the same instant: 100 appends,
    # one after another, took longer than the window on a loaded machine, and the first
    # channels were forgotten before they were counted. The window is what a stall
    # between the append and the count below would have to pass.
    broker = make_broker(history_seconds=1.0)
    head = await broker.head()  # first: a Redis broker learns its epoch from Redis
    start = Cursor(broker.epoch, head)
    batch = [entry(f"logs:etl:ws1:run-{i}", "m") for i in range(100)]
    stored = sorted((await broker.append(batch, None)).events, key=lambda e: e.seq)
    if is_nats(broker):  # usage is read every few seconds there: watch history instead
        deadline = asyncio.get_running_loop().time() + 15
        while (await read_all(broker, [parse_pattern("logs:etl:>")], start)).events:
            assert asyncio.get_running_loop().time() < deadline, "never expired"
            await asyncio.sleep(0.05)
    else:
        assert broker.usage().channels == 100
    await wait_for(lambda: broker.usage().channels == 0, timeout=15)
    # Nothing is retained, and the cursor from before is told exactly what it lost (on
    # NATS: that it lost at least nothing counted, placed after the loss: not silent).
    replay = await read_all(broker, [parse_pattern("logs:etl:>")], start)
    assert replay.events == []
    exact = Gap("logs:etl:>", 100, "trimmed", channels=100, seq=stored[-1].seq)
    assert_loss(broker, replay.gaps, exact, before=MAX_SEQ)
    # A cursor after the loss hears nothing of it.
    assert (
        await read_all(broker, [parse_pattern("logs:etl:>")], Cursor(broker.epoch, stored[-1].seq))
    ).gaps == []


async def test_a_forgotten_channel_starts_again_and_an_older_cursor_hears_of_it(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker(history_seconds=1.0)  # what a stall would have to pass
    head = await broker.head()  # first: a Redis broker learns its epoch from Redis
    start = Cursor(broker.epoch, head)
    gone = (await broker.append([entry(ETL, "a"), entry(ETL, "b")], None)).events

    async def forgotten() -> bool:
        probe = await read_all(broker, [parse_pattern(ETL)], start)
        return [g.reason for g in probe.gaps] == ["expired"]

    deadline = asyncio.get_running_loop().time() + 20
    while not await forgotten():
        assert asyncio.get_running_loop().time() < deadline, "never forgotten"
        await asyncio.sleep(0.05)
    back = (await broker.append([entry(ETL, "c")], None)).events
    assert [e.offset for e in back] == [0]  # a new life: offsets from 0, seqs go on
    assert back[0].seq > gone[-1].seq
    replay = await read_all(broker, [parse_pattern(ETL)], start)
    assert replay.events == back
    # The loss can no longer be counted exactly: at least nothing is silently dropped.
    [gap] = replay.gaps
    assert gap.reason == "expired" and gap.seq >= gone[-1].seq
    # From the gap's cursor on, nothing more is reported lost.
    assert (await read_all(broker, [parse_pattern(ETL)], Cursor(broker.epoch, gap.seq))).gaps == []


async def test_a_resent_batch_is_recognised_within_the_window_only(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker(dedup_seconds=0.3, dedup_batches=2)
    batch = [entry(ETL, "a")]
    first = await broker.append(batch, ("p", 1))
    await broker.append(batch, ("p", 2))
    assert (await broker.append(batch, ("p", 1))).duplicate
    await broker.append(batch, ("p", 3))  # the window holds the newest 2: 2 and 3
    again = await broker.append(batch, ("p", 1))
    if is_nats(broker):  # recognised by time only (Broker.append)
        assert again.duplicate and again.events[0].seq == first.events[0].seq
    else:
        assert not again.duplicate and again.events[0].seq > first.events[0].seq
    await asyncio.sleep(0.4)  # the window's age, a setting of the broker's own clock
    late = await broker.append(batch, ("p", 3))
    assert not late.duplicate


async def test_the_dedup_window_is_per_producer_and_answers_alike_within_it(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker(dedup_batches=2)
    batch = [entry(ETL, "a"), entry(FAAS, "b")]
    first = await broker.append(batch, ("p", 1))
    for sequence in range(1, 4):  # another producer's batches do not push p's out
        await broker.append(batch, ("q", sequence))
    for _ in range(2):  # recognised again and again, with the first answer each time
        again = await broker.append(batch, ("p", 1))
        assert again.duplicate
        assert [(e.channel, e.offset, e.seq) for e in again.events] == [
            (e.channel, e.offset, e.seq) for e in first.events
        ]
    # q's window: 2 and 3 (on NATS: every batch within the duplicate window)
    assert (await broker.append(batch, ("q", 1))).duplicate == is_nats(broker)


# -- listeners -----------------------------------------------------------------------------


async def test_listeners_get_every_event_once_in_seq_order(make_broker: MakeBroker) -> None:
    broker = make_broker()
    first, second = Received(broker), await Received.watching(broker)

    async def publish(n: int) -> list[Event]:
        batch = [entry(ETL if i % 2 else FAAS, f"{n}.{i}") for i in range(3)]
        return (await broker.append(batch, (f"p{n}", 1))).events

    results = await asyncio.gather(*(publish(n) for n in range(20)))
    stored = sorted((e for events in results for e in events), key=lambda e: e.seq)
    for received in (first, second):
        assert await received.count(60) == stored
        assert all(batch for batch in received.batches)
    await broker.append([entry(ETL, "last")], None)
    assert len(await first.count(61)) == 61


# -- the rest ------------------------------------------------------------------------------


async def test_epoch_fits_in_a_cursor(make_broker: MakeBroker) -> None:
    broker = make_broker()
    await broker.head()
    assert decode_cursor(encode_cursor(broker.epoch, 42)) == Cursor(broker.epoch, 42)


async def test_ready_usage_and_close_twice(make_broker: MakeBroker) -> None:
    broker = make_broker()
    await broker.head()  # a NATS broker connects on first use
    assert await broker.ready()
    await broker.append([entry(ETL, "a"), entry(FAAS, "b"), entry(ETL, "c")], None)
    await wait_for(lambda: broker.usage().channels == 2, timeout=5)
    await broker.close()
    await broker.close()


async def test_a_broker_offers_resyncing_exactly_when_its_live_delivery_can_skip(
    make_broker: MakeBroker,
) -> None:
    """The app asks for `on_resync` by ability (broker.Resyncing): Redis's feed can be
    trimmed past a slow instance and NATS's live messages missed across a reconnect; the
    memory broker delivers every event it stores."""
    broker = make_broker()
    assert isinstance(broker, Resyncing) == isinstance(broker, (RedisBroker, NatsBroker))
