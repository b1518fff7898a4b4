"""The Python SDK's Publisher against real gateways: batching, acks, reconnects with
exactly-once storage, typed errors, token refresh, backpressure, batches over the
gateway's limits, drains, rate limits, an unreachable gateway and unexpected errors."""

from __future__ import annotations

import asyncio
import time

import pytest
from logs_gateway import (
    BatchTooLarge,
    EntryTooLarge,
    LogsGatewayError,
    Options,
    PermissionDenied,
    Publisher,
    PublisherFailed,
    PublishTimeout,
    State,
    SyncPublisher,
    Unauthenticated,
    Unavailable,
)

from gateway.core.tokens import Signer
from tests.conftest import Running, free_port, running_gateway, wait_for
from tests.sse_client import Event, Stream, open_stream
from tests.tcp_proxy import tcp_proxy

CH = "logs:etl:workspace123:workflow456"
OTHER = "logs:faas:workspace123:function789"
MARKER = "the last entry"  # published last: whatever came before it has arrived once it has


async def collect(stream: Stream, into: list[Event], kind: str = "log") -> None:
    """Read events into a list until cancelled (so the SSE socket never backs up)."""
    while True:
        event = await stream.next(timeout=60)
        if event.event == kind:
            into.append(event)


async def publish_range(pub: Publisher, first: int, last: int) -> None:
    for i in range(first, last):
        await pub.publish(CH, f"entry {i}", attributes={"i": i})
        if i % 25 == 0:
            await asyncio.sleep(0.001)  # let batches go out as we go


async def test_entries_survive_dropped_connections_exactly_once_in_order(gw: Running) -> None:
    """Cut the publisher's connection five times, twice after its acks were swallowed (the
    batches were stored, the publisher never heard): a subscriber connected throughout
    still gets every entry once, in order."""
    count, rounds = 3000, 5
    options = Options(batch_size=20, linger=0.002, max_in_flight=64)
    received: list[Event] = []
    async with (
        tcp_proxy(gw.grpc_target) as proxy,
        open_stream(gw.http, CH, gw.token(subscribe=[CH])) as stream,
        Publisher(gw.token("etl", publish=[CH]), proxy.address, options=options) as pub,
    ):
        await stream.next()  # ready
        reader = asyncio.create_task(collect(stream, received))
        per_round = count // rounds
        for r in range(rounds):
            first, last = r * per_round, (r + 1) * per_round
            if r % 2:  # a healthy connection first, then acks lost on their way back
                await publish_range(pub, first, first + per_round // 2)
                await pub.flush(timeout=20)
                proxy.hold = True
                first += per_round // 2
            await publish_range(pub, first, last)
            await asyncio.sleep(0.1)
            proxy.drop()
            proxy.hold = False
        await pub.flush(timeout=30)
        # Anything stored twice was stored before the marker: it has arrived once it has.
        await pub.publish(CH, MARKER)
        await pub.flush(timeout=30)
        await wait_for(lambda: received[-1:] and received[-1].data["message"] == MARKER, 20)
        reader.cancel()
    sent = [f"entry {i}" for i in range(count)]
    assert [e.data["message"] for e in received] == [*sent, MARKER]
    assert pub.stats.acked == count + 1
    assert pub.stats.duplicates > 0  # resent batches were recognised, not stored again
    assert pub.stats.reconnects >= rounds - 1  # the last cut may come after the last ack
    assert proxy.connections >= rounds  # the first, then one after each cut but the last


async def test_a_connection_that_stops_answering_is_replaced(gw: Running) -> None:
    """Acks stop coming on a connection that stays open (a half-dead network path): after
    ack_timeout the publisher opens a new one and resends; each entry is stored once."""
    options = Options(ack_timeout=0.5, linger=0.001)
    async with (
        tcp_proxy(gw.grpc_target) as proxy,
        Publisher(gw.token(publish=[CH]), proxy.address, options=options) as pub,
    ):
        await pub.publish(CH, "before")
        await pub.flush(timeout=10)
        proxy.hold = True
        await publish_range(pub, 0, 100)
        await wait_for(lambda: proxy.connections == 2, timeout=10)
        proxy.hold = False
        await pub.flush(timeout=10)
    assert gw.gateway is not None and gw.gateway.ingest.counts.total("stored") == 101
    assert (pub.stats.acked, pub.stats.duplicates) == (101, 100)


async def test_an_idle_connection_that_died_is_replaced_before_the_next_entry(
    gw: Running,
) -> None:
    """Nothing is due, so no ack can be late: the keepalive ping finds the dead path, and
    the next entry goes out on a new connection without waiting for ack_timeout."""
    options = Options(keepalive=5, ack_timeout=60, linger=0.001)
    async with (
        tcp_proxy(gw.grpc_target) as proxy,
        Publisher(gw.token(publish=[CH]), proxy.address, options=options) as pub,
    ):
        await pub.publish(CH, "before")
        await pub.flush(timeout=10)
        proxy.hold = True  # the path goes silent: no reply, no reset
        await wait_for(lambda: proxy.connections == 2, timeout=30)
        proxy.hold = False
        await pub.publish(CH, "after")
        await pub.flush(timeout=10)
    assert gw.gateway is not None and gw.gateway.ingest.counts.total("stored") == 2


async def test_a_forbidden_channel_raises_permission_denied_naming_it(gw: Running) -> None:
    async with Publisher(gw.token(publish=[CH]), gw.grpc_target) as pub:
        await pub.publish(CH, "allowed")
        await pub.publish(OTHER, "not allowed")
        with pytest.raises(PermissionDenied) as caught:
            await pub.flush()
        await pub.flush()  # reported once
    assert caught.value.channel == OTHER
    assert OTHER in str(caught.value)
    assert caught.value.entry is not None and caught.value.entry.body == "not allowed"
    assert (pub.stats.acked, pub.stats.failed) == (1, 1)


async def test_an_expired_token_raises_unauthenticated(gw: Running) -> None:
    expired = gw.signer.mint("etl", publish=[CH], extra={"exp": int(time.time()) - 120})
    pub = Publisher(expired, gw.grpc_target)
    await pub.start()
    await pub.publish(CH, "too late")
    with pytest.raises(Unauthenticated, match="expired"):
        await pub.flush(timeout=10)
    with pytest.raises(Unauthenticated):
        await pub.publish(CH, "still too late")
    await pub.close()
    assert pub.stats.failed == 1


async def test_oversized_entries_raise_entry_too_large(gw: Running) -> None:
    errors: list[LogsGatewayError] = []
    async with Publisher(gw.token(publish=[CH]), gw.grpc_target, on_error=errors.append) as pub:
        with pytest.raises(EntryTooLarge, match="4 MiB"):  # could never be sent: refused here
            await pub.publish(CH, "x" * (5 * 1024 * 1024))
        await pub.publish(CH, "y" * (70 * 1024))  # over the gateway's 64 KiB entry limit
        await pub.publish(CH, "fine")
        await pub.flush()  # errors went to on_error instead
    assert [type(e) for e in errors] == [EntryTooLarge]
    assert errors[0].channel == CH
    assert pub.stats.acked == 1


async def test_a_token_callable_is_asked_again_before_expiry(gw: Running) -> None:
    minted: list[str] = []

    def token() -> str:
        minted.append(gw.signer.mint("etl", publish=[CH], ttl=2))
        return minted[-1]

    received: list[Event] = []
    async with (
        open_stream(gw.http, CH, gw.token(subscribe=[CH])) as stream,
        Publisher(token, gw.grpc_target) as pub,
    ):
        await stream.next()
        reader = asyncio.create_task(collect(stream, received))
        for i in range(35):
            await pub.publish(CH, f"entry {i}")
            await asyncio.sleep(0.1)
        await pub.flush()
        await wait_for(lambda: len(received) == 35, timeout=20)
        reader.cancel()
    assert len(minted) >= 3
    assert pub.stats.reconnects == 0  # refreshed ahead of time, never refused
    assert [e.data["message"] for e in received] == [f"entry {i}" for i in range(35)]


async def test_buffers_while_the_gateway_is_away_then_delivers(signer: Signer) -> None:
    """A full buffer blocks publish() (when_full="block"); once the gateway is up,
    everything buffered is delivered."""
    port = free_port()
    options = Options(max_buffer=50, linger=0.001)
    token = signer.mint("etl", publish=[CH])
    async with Publisher(token, f"127.0.0.1:{port}", options=options) as pub:
        for i in range(50):
            await pub.publish(CH, f"entry {i}")
        blocked = asyncio.create_task(pub.publish(CH, "entry 50"))
        await asyncio.sleep(0.3)
        assert not blocked.done()
        async with running_gateway(grpc_port=port) as gw:
            assert await asyncio.wait_for(blocked, 20)
            await pub.flush(timeout=20)
            assert gw.gateway is not None and gw.gateway.ingest.counts.total("stored") == 51
    assert pub.stats.acked == 51


async def test_drop_mode_counts_and_close_gives_up_after_its_timeout() -> None:
    options = Options(max_buffer=10, when_full="drop")
    pub = Publisher("a.b.c", f"127.0.0.1:{free_port()}", options=options)
    await pub.start()
    results = [pub.publish_nowait(CH, f"entry {i}") for i in range(25)]
    assert results.count(True) == 10
    assert pub.stats.dropped == 15
    with pytest.raises(PublishTimeout) as caught:
        await pub.close(timeout=0.3)
    assert caught.value.pending == 10
    assert pub.stats.failed == 10


def test_sync_publisher_from_plain_code(gw_process: Running) -> None:
    with SyncPublisher(gw_process.token(publish=[CH]), gw_process.grpc_target) as pub:
        for i in range(1200):
            pub.publish(CH, f"entry {i}", level="warn", attributes={"i": i})
        pub.flush(timeout=20)
        assert pub.stats.acked == 1200
    with pytest.raises(LogsGatewayError, match="closed"):
        pub.publish(CH, "after close")


async def test_a_rate_limited_stream_waits_the_hint_and_resends_everything() -> None:
    """Over its token's publish rate the gateway ends the stream (RESOURCE_EXHAUSTED with
    `retry-after-ms`); the publisher waits that long and resends: all stored, once, in order."""
    count = 1500
    received: list[Event] = []
    async with running_gateway(publish_rate=500) as gw:
        options = Options(batch_size=100, linger=0.001)
        async with (
            open_stream(gw.http, CH, gw.token(subscribe=[CH])) as stream,
            Publisher(gw.token("etl", publish=[CH]), gw.grpc_target, options=options) as pub,
        ):
            await stream.next()
            reader = asyncio.create_task(collect(stream, received))
            started = time.monotonic()
            for i in range(count):
                await pub.publish(CH, f"entry {i}")
            await pub.flush(timeout=30)
            elapsed = time.monotonic() - started
            await wait_for(lambda: len(received) >= count, timeout=20)
            reader.cancel()
    assert [e.data["message"] for e in received] == [f"entry {i}" for i in range(count)]
    assert pub.stats.reconnects > 0
    assert elapsed > 1.5  # 1000 entries over the first second's burst of 500, at 500/s


async def test_a_batch_over_the_message_limit_is_split_and_the_rest_goes_on() -> None:
    """The issue's poison batch: three 40 kB entries and a small one, in one batch over
    --max-message-bytes 65536 (gRPC refuses it, RESOURCE_EXHAUSTED without retry-after-ms):
    split in halves until each fits, all four stored once and in order. A 70 kB entry
    (under the entry limit here) cannot fit even alone: EntryTooLarge naming the limit,
    and the entry after it still arrives."""
    received: list[Event] = []
    async with running_gateway(max_message_bytes=65536, max_entry_bytes=200_000) as gw:
        errors: list[LogsGatewayError] = []
        async with (
            open_stream(gw.http, CH, gw.token(subscribe=[CH])) as stream,
            Publisher(gw.token(publish=[CH]), gw.grpc_target, on_error=errors.append) as pub,
        ):
            await stream.next()
            reader = asyncio.create_task(collect(stream, received))
            for i in range(3):
                await pub.publish(CH, f"{i}" * 40_000)
            await pub.publish(CH, "small")
            await pub.flush(timeout=10)
            await pub.publish(CH, "z" * 70_000)
            await pub.publish(CH, "after")
            await pub.flush(timeout=10)
            await wait_for(lambda: len(received) >= 5, timeout=10)
            reader.cancel()
        assert gw.gateway is not None and gw.gateway.ingest.counts.total("stored") == 5
    assert [e.data["message"][:1] for e in received] == ["0", "1", "2", "s", "a"]
    assert [type(e) for e in errors] == [EntryTooLarge]
    assert "over the gateway's limit" in str(errors[0])
    assert errors[0].entry is not None and len(errors[0].entry.body) == 70_000
    assert (pub.stats.acked, pub.stats.failed) == (5, 1)


async def test_a_batch_over_the_gateways_entry_count_raises_batch_too_large() -> None:
    async with running_gateway(max_batch_entries=5) as gw:
        options = Options(batch_size=8)
        async with Publisher(gw.token(publish=[CH]), gw.grpc_target, options=options) as pub:
            for i in range(8):
                await pub.publish(CH, f"entry {i}")
            with pytest.raises(BatchTooLarge, match="at most 5") as caught:
                await pub.flush(timeout=10)
            await pub.publish(CH, "alone")  # the publisher goes on
            await pub.flush(timeout=10)
    assert caught.value.also_failed == 7
    assert (pub.stats.acked, pub.stats.failed) == (1, 8)


async def test_a_draining_gateway_is_left_for_the_next_without_loss_or_repeats() -> None:
    """The gateway drains mid-stream (UNAVAILABLE): the publisher reconnects with backoff to
    the one that replaces it; every entry is stored by one of the two, once."""
    port = free_port()
    stored: list[int] = []
    async with running_gateway(grpc_port=port) as first:
        token = first.token(publish=[CH])
        pub = Publisher(token, first.grpc_target, options=Options(linger=0.001))
        await pub.start()
        await publish_range(pub, 0, 200)
        await pub.flush(timeout=10)
        await publish_range(pub, 200, 400)
    assert first.gateway is not None
    stored.append(first.gateway.ingest.counts.total("stored"))
    async with running_gateway(grpc_port=port) as second:
        await publish_range(pub, 400, 500)
        await pub.close(timeout=20)
        assert second.gateway is not None
        stored.append(second.gateway.ingest.counts.total("stored"))
    assert sum(stored) == 500 and stored[1] >= 100
    assert pub.stats.acked == 500 and pub.stats.reconnects >= 1


async def test_an_unreachable_gateway_is_named_after_connect_timeout() -> None:
    target = f"127.0.0.1:{free_port()}"
    pub = Publisher("a.b.c", target, options=Options(connect_timeout=0.5))
    await pub.start()
    await pub.publish(CH, "nowhere")
    with pytest.raises(Unavailable, match=rf"cannot reach {target}: connection refused"):
        await pub.flush(timeout=10)
    assert pub.state is State.FAILED
    await pub.close()
    assert pub.stats.failed == 1


async def test_an_unexpected_error_is_logged_and_raised_not_retried(
    gw: Running, caplog: pytest.LogCaptureFixture
) -> None:
    """A token source that raises is a bug to show, not a reason to reconnect forever."""

    def broken() -> str:
        raise RuntimeError("vault client misconfigured")

    pub = Publisher(broken, gw.grpc_target)
    await pub.start()
    await pub.publish(CH, "entry")
    with pytest.raises(PublisherFailed, match="vault client misconfigured") as caught:
        await pub.flush(timeout=10)
    assert isinstance(caught.value.__cause__, RuntimeError)
    [record] = [r for r in caplog.records if r.name == "logs_gateway.publisher"]
    assert record.levelname == "ERROR" and record.exc_info is not None
    with pytest.raises(PublisherFailed):
        await pub.publish(CH, "again")
    await pub.close()
    assert pub.stats.reconnects == 0
