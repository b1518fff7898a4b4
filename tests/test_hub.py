"""The hub's seam between history and live delivery, without sockets."""

from __future__ import annotations

import asyncio

import pytest

from gateway.app.brokers import memory_broker
from gateway.core import sse
from gateway.core.broker_memory import MemoryBroker
from gateway.core.catch_up import CatchUp, catch_up
from gateway.core.channels import Pattern, parse_pattern
from gateway.core.cursor import Cursor
from gateway.core.endings import End
from gateway.core.events import Entry
from gateway.core.hub import FLUSH_EVERY, Hub
from gateway.core.subscription import StreamSubscription
from tests.conftest import make_config, wait_for

ETL = "logs:etl:w:f"


class _Sink:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def pending_bytes(self) -> int:
        return 0

    def sent_bytes(self) -> int:
        return len(self.data)

    def abort(self) -> None:
        raise AssertionError("not expected")


def _entry(message: str) -> Entry:
    return Entry(ETL, 1, 9, message, "s", {})


async def _start(hub: Hub, sub: StreamSubscription, start: CatchUp) -> None:
    """What the stream handler does: send each page, then hand `sub` to live delivery."""
    assert isinstance(sub.sink, _Sink)
    epoch = hub._epoch().encode()
    while (page := await start.next_page()) is not None:
        sub.sink.write(sse.page_frames(epoch, page, sub.min_severity))
    hub.start(sub, start)


async def _setup(
    flush_every: float = FLUSH_EVERY,
) -> tuple[MemoryBroker, Hub, _Sink, StreamSubscription]:
    broker = memory_broker(make_config())
    hub = Hub(
        epoch=lambda: broker.epoch, max_per_owner=16, max_streams=100, flush_every=flush_every
    )
    broker.add_listener(hub.deliver)
    sink = _Sink()
    sub = StreamSubscription("c1", (parse_pattern(ETL),), 0, "o", sink, max_buffer=1 << 20)
    return broker, hub, sink, sub


async def _through_marker(broker: MemoryBroker, sink: _Sink) -> None:
    """Store a last entry and wait until `sink` has it: what came before it has arrived
    (twice, if it was sent twice)."""
    await broker.append([_entry("marker")], None)
    await wait_for(lambda: b'"message":"marker"' in sink.data)


async def test_resume_does_not_double_events_stored_this_loop_turn() -> None:
    """A busy hub paces its flushes (here: none due for an hour after the first), so what
    was stored just before a resume may still be queued once its pages are read."""
    broker, hub, sink, sub = await _setup(flush_every=3600)
    watching = _Sink()
    watcher = StreamSubscription("c0", sub.patterns, 0, "o", watching, max_buffer=1 << 20)
    await hub.add(watcher)  # someone is watching, so the hub queues what is stored
    await _start(hub, watcher, await catch_up(broker, watcher.patterns, None))
    first = await broker.append([_entry("first")], None)
    await wait_for(lambda: b'"message":"first"' in watching.data)  # flushed before `sub` comes
    await broker.append([_entry("unflushed")], None)  # queued in the hub, not flushed yet
    await hub.add(sub)
    start = await catch_up(broker, sub.patterns, Cursor(broker.epoch, first.events[0].seq))
    await _start(hub, sub, start)
    await broker.append([_entry("marker")], None)
    hub.flush()  # the paced flush, come due: the marker, and anything left over
    assert b'"message":"marker"' in sink.data
    assert sink.data.count(b'"message":"unflushed"') == 1
    assert b'"message":"first"' not in sink.data


async def test_live_start_skips_events_before_its_head() -> None:
    broker, hub, sink, sub = await _setup()
    await broker.append([_entry("before")], None)  # not flushed when the client connects
    await hub.add(sub)
    await _start(hub, sub, await catch_up(broker, sub.patterns, None))
    await broker.append([_entry("after")], None)
    await _through_marker(broker, sink)
    assert b'"message":"before"' not in sink.data
    assert sink.data.count(b'"message":"after"') == 1


async def test_reset_cursor_delivers_everything_new() -> None:
    broker, hub, sink, sub = await _setup()
    await hub.add(sub)
    start = await catch_up(broker, sub.patterns, Cursor("oldepoch", 10**6))
    assert start.last == 0
    await _start(hub, sub, start)
    assert [g.reason for g in start.gaps] == ["reset"]
    await broker.append([_entry("new")], None)
    await _through_marker(broker, sink)
    assert sink.data.count(b'"message":"new"') == 1


async def test_a_close_during_the_replay_is_sent_after_it() -> None:
    broker, hub, sink, sub = await _setup()
    await broker.append([_entry("missed")], None)
    await hub.add(sub)
    sub.close(End.TOKEN_EXPIRED)  # before start: the response has not begun
    assert sink.data == b""
    assert not sub.done.done()
    await _start(hub, sub, await catch_up(broker, sub.patterns, Cursor(broker.epoch, 0)))
    assert sink.data.index(b'"message":"missed"') < sink.data.index(b"event: error")
    assert sub.done.result() is End.TOKEN_EXPIRED


async def test_after_a_slow_flush_what_arrives_meanwhile_goes_in_one_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One entry per publish to many subscribers: a flush costs its writes whatever it
    carries. The hub pauses as long as the last flush took, so entries published one by one
    meanwhile reach each subscriber in one write, not one flush (and write) per entry."""
    loop = asyncio.get_running_loop()
    taken = 0.0  # what the writes "took": the loop's clock runs ahead by as much
    real_time = loop.time
    monkeypatch.setattr(loop, "time", lambda: real_time() + taken)

    class SlowSink(_Sink):
        def __init__(self) -> None:
            super().__init__()
            self.writes: list[tuple[float, bytes]] = []
            self.wrote = asyncio.Event()

        def write(self, data: bytes) -> None:
            nonlocal taken
            super().write(data)
            taken += 0.05  # a write to many subscribers, in one
            self.writes.append((loop.time(), data))
            self.wrote.set()

    broker, hub, _, _ = await _setup()
    sink = SlowSink()
    sub = StreamSubscription("c1", (parse_pattern(ETL),), 0, "o", sink, max_buffer=1 << 20)
    await hub.add(sub)
    await _start(hub, sub, await catch_up(broker, sub.patterns, None))
    sink.writes.clear()
    sink.wrote.clear()
    await broker.append([_entry("m0")], None)
    await sink.wrote.wait()  # an idle hub flushes at once
    sink.wrote.clear()
    for n in range(1, 6):  # one by one, each in a loop turn of its own
        await broker.append([_entry(f"m{n}")], None)
        await asyncio.sleep(0)
    await sink.wrote.wait()
    (first_at, first), (second_at, second) = sink.writes
    assert first.count(b"event: log") == 1
    assert [f'"message":"m{n}"'.encode() in second for n in range(1, 6)] == [True] * 5
    assert second_at - first_at >= 0.05 + 0.05  # the pause, then its own write


class _Watching:
    """A broker's interest, recording what the hub asks it to watch."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def watch(self, pattern: Pattern) -> None:
        await asyncio.sleep(0)  # a real broker's watch takes a round trip
        self.calls.append(("watch", pattern.text))

    def unwatch(self, pattern: Pattern) -> None:
        self.calls.append(("unwatch", pattern.text))


async def test_the_broker_watches_each_pattern_once_while_any_subscription_uses_it() -> None:
    interest = _Watching()
    hub = Hub(epoch=lambda: "e", interest=interest, max_per_owner=16, max_streams=100)
    subs = [
        StreamSubscription(f"c{i}", (parse_pattern(ETL), parse_pattern(p)), 0, "o", _Sink(), 1024)
        for i, p in enumerate(("logs:a:>", "logs:b:>"))
    ]
    await asyncio.gather(*(hub.add(sub) for sub in subs))  # at once: one watch of ETL
    assert sorted(interest.calls) == sorted(
        [("watch", ETL), ("watch", "logs:a:>"), ("watch", "logs:b:>")]
    )
    interest.calls.clear()
    hub.remove(subs[0])
    assert interest.calls == [("unwatch", "logs:a:>")]  # ETL still has a user
    hub.remove(subs[1])
    assert sorted(interest.calls) == sorted(
        [("unwatch", "logs:a:>"), ("unwatch", "logs:b:>"), ("unwatch", ETL)]
    )
