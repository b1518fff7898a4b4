"""Every stream limit holds on a real gateway process: refused past it with 429 /
RESOURCE_EXHAUSTED and a message naming the limit's setting, and room again once a stream
closes; de-duplication memory stays under its byte bound."""

from __future__ import annotations

import contextlib
import tracemalloc
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

from gateway.app.brokers import memory_broker, redis_broker
from gateway.core.events import Entry, Event
from tests.conftest import Running, entry, gateway_process, make_config, wait_for
from tests.redis_server import RedisServer
from tests.sse_client import open_stream

CHANNEL = "logs:etl:limits:run1"


class PublishStream:
    """One gRPC Publish stream on its own connection, kept open and idle after one ack."""

    def __init__(self, run: Running, token: str) -> None:
        self.channel = grpc.aio.insecure_channel(run.grpc_target)
        stub = pb_grpc.LogIngestStub(self.channel)
        self.call = stub.Publish(metadata=[("authorization", f"Bearer {token}")])

    async def open(self) -> None:
        """Returns once the gateway admitted the stream (it acked a batch on it)."""
        request = pb.PublishRequest(entries=[entry(CHANNEL, "hello")])
        await self.call.write(request)
        ack = await self.call.read()
        assert isinstance(ack, pb.PublishAck) and ack.results[0].code == 0

    async def refusal(self) -> grpc.aio.AioRpcError:
        """The status of a stream the gateway refuses at once (nothing is written on it,
        so no write races the refusal)."""
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await self.call.read()
        return refused.value

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close()


@contextlib.asynccontextmanager
async def publish_streams(run: Running) -> AsyncIterator[list[PublishStream]]:
    streams: list[PublishStream] = []
    try:
        yield streams
    finally:
        for stream in streams:
            await stream.close()


async def open_publishers(run: Running, token: str, n: int, into: list[PublishStream]) -> None:
    for _ in range(n):
        stream = PublishStream(run, token)
        into.append(stream)
        await stream.open()


def assert_refused(error: grpc.aio.AioRpcError, limit: str, setting: str) -> None:
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert limit in (error.details() or "") and setting in (error.details() or "")
    assert dict(error.trailing_metadata() or ()).get("retry-after-ms") == "1000"


async def test_a_flood_of_idle_publish_streams_is_refused_past_the_limits() -> None:
    args = ("--max-publish-streams-per-token", "4", "--max-publish-streams", "6")
    with gateway_process(*args) as run:
        flooder = run.token("svc-flood", publish=["logs:>"])
        async with publish_streams(run) as streams:
            await open_publishers(run, flooder, 4, streams)
            streams.append(extra := PublishStream(run, flooder))
            assert_refused(
                await extra.refusal(),
                "already has 4 open publish streams",
                "--max-publish-streams-per-token",
            )
            # Other tokens are not held to the flooder's count, only to the total.
            await open_publishers(run, run.token("svc-other", publish=["logs:>"]), 2, streams)
            streams.append(extra := PublishStream(run, run.token("svc-third", publish=["logs:>"])))
            assert_refused(
                await extra.refusal(),
                "gateway already has 6 open publish streams",
                "--max-publish-streams",
            )
            # A stream that closes makes room for one more of its token.
            await streams[0].close()
            await wait_for(lambda: open_streams(run, "publish") == 5, 10)
            await open_publishers(run, flooder, 1, streams)
            metrics = await scrape(run)
            assert (
                'logs_gateway_streams_refused_total{kind="publish",limit="per_token"} 1.0'
                in metrics
            )
            assert 'logs_gateway_streams_refused_total{kind="publish",limit="total"} 1.0' in metrics
            assert 'logs_gateway_streams_open{kind="publish"} 6.0' in metrics


async def scrape(run: Running) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(run.http + "/metrics")).text


def open_streams(run: Running, kind: str) -> float:
    """The gateway's count of open streams of `kind`, from /metrics."""
    for line in httpx.get(run.http + "/metrics").text.splitlines():
        if line.startswith(f'logs_gateway_streams_open{{kind="{kind}"}}'):
            return float(line.split()[-1])
    raise AssertionError(f"no open-streams sample for {kind}")


async def test_streams_in_all_are_limited_over_sse_and_grpc_together() -> None:
    with gateway_process("--max-streams", "3") as run:
        async with contextlib.AsyncExitStack() as stack:
            tokens = [run.token(f"reader{i}", subscribe=["logs:>"]) for i in range(2)]
            streams = [  # separate tokens: only the total limits them
                await stack.enter_async_context(open_stream(run.http, CHANNEL, t)) for t in tokens
            ]
            for stream in streams:
                assert (await stream.next()).event == "ready"
            channel = grpc.aio.insecure_channel(run.grpc_target)
            stack.push_async_callback(channel.close)
            metadata = [("authorization", f"Bearer {run.token('g', subscribe=['logs:>'])}")]
            subscribe = pb_grpc.LogStreamStub(channel).Subscribe(
                pb.SubscribeRequest(channels=[CHANNEL]), metadata=metadata
            )
            event = await subscribe.read()  # its Ready: the third stream is open
            assert isinstance(event, pb.LogEvent) and event.HasField("ready")
            async with httpx.AsyncClient() as client:
                refused = await client.get(
                    run.http + "/api/logs/stream",
                    params={"channels": CHANNEL},
                    headers=run.headers(run.token("late", subscribe=["logs:>"])),
                )
            assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
            message = refused.json()["error"]["message"]
            assert "already has 3 open streams" in message and "--max-streams" in message
            late = pb_grpc.LogStreamStub(channel).Subscribe(
                pb.SubscribeRequest(channels=[CHANNEL]),
                metadata=[("authorization", f"Bearer {run.token('late2', subscribe=['logs:>'])}")],
            )
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await late.read()
            assert_refused(error.value, "already has 3 open streams", "--max-streams")
            subscribe.cancel()
            metrics = await scrape(run)
            assert (
                'logs_gateway_streams_refused_total{kind="subscribe",limit="total"} 2.0' in metrics
            )
            assert 'logs_gateway_stream_limit{kind="subscribe",limit="total"} 3.0' in metrics


def dedup_entries(n: int) -> list[Entry]:
    return [Entry("logs:etl:dedup:r1", 1, 9, f"m{i}", "svc", {}) for i in range(n)]


@pytest.mark.parametrize("entries_per_batch", [1, 100])
async def test_dedup_memory_stays_under_its_byte_bound(entries_per_batch: int) -> None:
    """Hundreds of producers each sending their window's worth of batches: what
    de-duplication holds, measured with tracemalloc, stays within the bound plus 25 %; the
    latest producer's resend is still recognised."""
    bound = 512 * 1024
    broker = memory_broker(
        make_config(max_dedup_bytes=bound, history_entries=10)
    )  # history stays small
    batch = dedup_entries(entries_per_batch)
    tracemalloc.start()
    try:
        await broker.append(batch, ("warm-up", 0))  # the broker's own first allocations
        before = tracemalloc.get_traced_memory()[0]
        for producer in range(400):
            for sequence in range(20):
                await broker.append(batch, (f"producer-{producer:05d}", sequence))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert broker.dedup_bytes <= bound
    assert held <= bound * 1.25, (held, broker.dedup_bytes)
    resent = await broker.append(batch, ("producer-00399", 19))
    assert resent.duplicate
    forgotten = await broker.append(batch, ("producer-00000", 0))
    assert not forgotten.duplicate  # the cost of the bound: the least recent went first


def feed_lines(key: str, redis_server: RedisServer) -> list[bytes]:
    """The event lines (field `e`) of each entry of a feed, oldest first."""
    entries: list[tuple[bytes, dict[bytes, bytes]]] = redis_server.client().xrange(key)  # type: ignore[assignment]
    return [fields[b"e"] for _, fields in entries]


async def test_the_redis_feed_stays_under_its_byte_bound(redis_server: RedisServer) -> None:
    """Batches of about 10 kB into a feed bound at 64 kB: the feed's event lines stay
    within the bound (an entry over it alone is kept: it is the newest), and an instance
    that keeps up still gets every event live."""
    bound = 64 * 1024
    config = make_config(broker=redis_server.url, max_feed_bytes=bound)
    reader = redis_broker(config, prefix="feed-bytes")
    writer = redis_broker(config, prefix="feed-bytes")
    received: list[Event] = []
    reader.add_listener(received.extend)
    try:
        await reader.head()  # its read loop follows the feed from here
        message = "x" * 1000
        for i in range(200):
            batch = [Entry("logs:etl:feed:r1", 1, 9, f"{i} {message}", "svc", {})] * 10
            await writer.append(batch, None)
            feed = feed_lines("feed-bytes:feed", redis_server)
            assert sum(map(len, feed)) <= bound, (i, sum(map(len, feed)))
        assert len(feed) < 10  # by bytes: far below the 10,000 batches of the count bound
        await wait_for(lambda: len(received) == 2_000, 10)
        assert [e.seq for e in received] == sorted(e.seq for e in received)
        await writer.append([Entry("logs:etl:feed:r1", 1, 9, "y" * 60_000, "svc", {})] * 2, None)
        assert len(feed_lines("feed-bytes:feed", redis_server)) == 1
    finally:
        await reader.close()
        await writer.close()
