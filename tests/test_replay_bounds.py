"""Replays of any size, sent with backpressure: a reader gets all of it on the first try,
a client that never reads holds one send buffer, not the history (DESIGN §6)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import httpx
import pytest
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

from gateway.core.channels import parse_pattern
from gateway.core.events import Event
from gateway.core.subscription import StreamSubscription
from tests.conftest import Running, entry, gateway_process, running_gateway, wait_for
from tests.sse_client import open_stream
from tests.tcp_proxy import tcp_proxy

ETL = "logs:etl:ws1:big"
ENTRIES = 100_000
# Filling and reading 100,000 entries took past pytest's 120 s under a load of 10-16; these
# tests are about what is delivered and held, not how fast: waits are for signals, and
# their bounds only stop a test that would never end.
SLOW = pytest.mark.timeout(400)


async def fill(gw: Running, n: int, size: int = 20) -> str:
    """Publish `n` entries to ETL; the cursor just before the first of them."""
    token = gw.token(subscribe=[ETL])
    async with open_stream(gw.http, ETL, token) as stream:
        start = (await stream.next()).id
    pub = gw.token(publish=[ETL])
    batches = [[entry(ETL, f"{b}:" + "x" * size) for _ in range(1000)] for b in range(n // 1000)]
    for first in range(0, len(batches), 20):
        await gw.publish(pub, batches[first : first + 20], producer=f"p{first}")
    return start


@SLOW
async def test_an_sse_resume_of_100_000_entries_succeeds_for_a_client_that_reads() -> None:
    async with running_gateway(history_entries=ENTRIES, publish_rate=0.0) as gw:
        cursor = await fill(gw, ENTRIES)
        token = gw.token(subscribe=[ETL])
        async with open_stream(gw.http, ETL, token, last_event_id=cursor) as stream:
            await stream.next()
            got = await stream.take(ENTRIES, timeout=30)
            assert [e.data["offset"] for e in got] == list(range(ENTRIES))
            await gw.publish(gw.token(publish=[ETL]), [[entry(ETL, "live")]], producer="live")
            assert (await stream.next()).data["message"] == "live"


@SLOW
async def test_a_grpc_resume_of_100_000_entries_succeeds_for_a_client_that_reads() -> None:
    async with running_gateway(history_entries=ENTRIES, publish_rate=0.0) as gw:
        cursor = await fill(gw, ENTRIES)
        token = gw.token(subscribe=[ETL])

        offsets = []
        async with grpc.aio.insecure_channel(gw.grpc_target) as channel:
            stream = pb_grpc.LogStreamStub(channel).Subscribe(
                pb.SubscribeRequest(channels=[ETL], cursor=cursor),
                metadata=[("authorization", f"Bearer {token}")],
            )
            async for event in stream:
                if not event.HasField("entry"):
                    continue  # the ready event
                offsets.append(event.entry.offset)
                if len(offsets) == ENTRIES:
                    stream.cancel()
                    break
        assert offsets == list(range(ENTRIES))


def rss_kib(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    assert match is not None
    return int(match.group(1))


@SLOW
async def test_clients_that_never_read_a_large_replay_hold_a_send_buffer_each() -> None:
    with gateway_process(
        "--history-entries",
        str(ENTRIES),
        "--heartbeat-seconds",
        "1",
        "--publish-rate",
        "0",
        "--dev",
    ) as gw:
        assert gw.process is not None
        await fill(gw, ENTRIES, size=900)  # about 100 MB of history
        before = rss_kib(gw.process.pid)
        url = urlsplit(gw.http)
        token = gw.token(subscribe=[ETL])
        request = (
            f"GET /api/logs/stream?channels={ETL} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nLast-Event-ID: zz-0\r\n\r\n"  # a full replay
        ).encode()
        readers = []
        for _ in range(4):
            reader, writer = await asyncio.open_connection(url.hostname, url.port)
            writer.write(request)
            readers.append((reader, writer))

        def metric(name: str) -> float:
            text = httpx.get(gw.http + "/metrics").text
            found = re.search(rf"^logs_gateway_{name} (\S+)$", text, re.M)
            return float(found.group(1)) if found else 0.0

        await wait_for(lambda: metric('subscriptions{transport="sse"}') == 4, timeout=30)
        peak = before
        # The writes stop where the sockets are full; none may hold its replay meanwhile.
        while metric('subscriptions{transport="sse"}') == 4:
            peak = max(peak, rss_kib(gw.process.pid))
            await asyncio.sleep(0.05)
        assert (peak - before) < 4 * 4 * 1024, (before, peak)  # < 4 MiB a client (was ~100)
        # They took nothing for two heartbeats: dropped as slow consumers.
        ended = 'streams_ended_total{reason="slow_consumer"}'
        await wait_for(lambda: metric(ended) == 4, timeout=30)
        for _, writer in readers:
            writer.close()


class _BusySink:
    """A connection with `pending` bytes still unsent."""

    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.written = 0
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def pending_bytes(self) -> int:
        return self.pending

    def sent_bytes(self) -> int:
        return self.written

    def abort(self) -> None:
        self.aborted = True


async def test_live_delivery_checks_the_bound_before_it_writes() -> None:
    def offered(pending: int, size: int) -> _BusySink:
        sink = _BusySink(pending)
        sub = StreamSubscription("c", (parse_pattern(ETL),), 0, "o", sink, max_buffer=1 << 20)
        sub.start(b"e", 0)
        event = Event(ETL, 0, 1, 9, b"x" * size)
        if sub.offer([event], lambda floor: b"x" * size):
            sub.flush()
        return sink

    full = offered(pending=900_000, size=200_000)
    assert full.aborted and full.written == 0  # dropped instead of passing the bound
    room = offered(pending=100_000, size=200_000)
    assert not room.aborted and room.written == 200_000
    # With nothing unsent, one loop turn's bytes always go, however many.
    idle = offered(pending=0, size=3_000_000)
    assert not idle.aborted and idle.written == 3_000_000


async def test_a_live_stream_that_takes_nothing_for_a_heartbeat_is_dropped() -> None:
    """Bounded in time as well as bytes: its unsent bytes are under the send buffer, but it
    has taken none of them for a whole heartbeat interval."""
    async with running_gateway(
        heartbeat_seconds=0.3, send_buffer_bytes=1 << 26, publish_rate=0.0
    ) as gw:
        assert gw.gateway is not None
        hub = gw.gateway.hub
        url = urlsplit(gw.http)
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(
            f"GET /api/logs/stream?channels={ETL} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Bearer {gw.token(subscribe=[ETL])}\r\n\r\n".encode()
        )
        await reader.readuntil(b"event: ready")  # and then it reads no more
        pub = gw.token(publish=[ETL])
        await gw.publish(pub, [[entry(ETL, "x" * 60_000) for _ in range(50)] for _ in range(4)])
        await wait_for(lambda: hub.counts.ended.get("slow_consumer") == 1, timeout=30)
        assert hub.subscriptions == 0
        writer.close()


async def test_a_subscriber_behind_a_dead_path_is_found_by_the_server_s_pings() -> None:
    async with (
        running_gateway(grpc_keepalive_seconds=1.0) as gw,
        tcp_proxy(gw.grpc_target) as proxy,
    ):
        assert gw.gateway is not None
        hub = gw.gateway.hub
        token = gw.token(subscribe=[ETL])
        channel = grpc.aio.insecure_channel(proxy.address)
        gw.channels.append(channel)
        call = pb_grpc.LogStreamStub(channel).Subscribe(
            pb.SubscribeRequest(channels=[ETL]), metadata=[("authorization", f"Bearer {token}")]
        )
        reader = asyncio.ensure_future(call.read())
        await wait_for(lambda: hub.subscriptions == 1, timeout=30)
        proxy.silent = True  # the path dies without a reset, as behind a lost NAT entry
        await wait_for(lambda: hub.subscriptions == 0, timeout=30)
        reader.cancel()
        call.cancel()


async def test_sse_replays_take_the_process_read_turns_one_page_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Replays read their pages in the read turns the process shares (catch_up.CatchUp):
    one page at a time however many streams replay, so a loop turn never runs the slices
    of many reads (with a turn of its own per stream, 20 resumes held every loop turn
    10-25 ms: bench/read_bounds.py)."""
    channels = [f"logs:etl:ws1:run-{i}" for i in range(3_000)]  # one entry each: a walk
    async with running_gateway(publish_rate=0.0) as gw:
        assert gw.gateway is not None
        pub = gw.token(publish=["logs:>"])
        for start in range(0, len(channels), 1_000):
            batch = [entry(c, "x") for c in channels[start : start + 1_000]]
            await gw.publish(pub, [batch], producer=f"p{start}")
        broker = gw.gateway.broker
        read_after = broker.read_after
        reading, most = 0, 0

        async def counted(*args: object, **kwargs: object) -> AsyncIterator[object]:
            nonlocal reading, most
            pages = read_after(*args, **kwargs)  # type: ignore[arg-type]
            try:
                while True:
                    reading += 1
                    most = max(most, reading)
                    try:
                        page = await anext(pages)
                    except StopAsyncIteration:
                        return
                    finally:
                        reading -= 1
                    yield page
            finally:
                await pages.aclose()

        monkeypatch.setattr(broker, "read_after", counted)
        sub = gw.token(subscribe=["logs:etl:>"])

        async def resume() -> int:
            async with open_stream(gw.http, "logs:etl:>", sub, last_event_id="zz-0") as stream:
                await stream.next()
                return len(await stream.take(len(channels), timeout=30))

        assert await asyncio.gather(*(resume() for _ in range(5))) == [len(channels)] * 5
        assert most == 1, f"{most} page reads of SSE replays were under way at once"
