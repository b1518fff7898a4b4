"""The benchmark's Python publishers count the entries not acknowledged by channel, so a
delivery row owes subscribers only what was acknowledged: a refused publish counts once in
`lost`, not once more for every subscriber of its channel (106,656 "lost" in one NATS run
were 1,056 refused entries, each counted once and again for each of 100 subscribers)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
from logs_gateway.v1 import logs_pb2 as pb

from bench import entries as wire
from bench.publish_load import Acks, GrpcPublisher, HttpPublisher
from tests.test_bench_posts import CHANNELS, Script


def test_a_batch_refuses_the_entries_with_a_code_and_every_unanswered_one() -> None:
    acks = Acks()
    acks.refuse(["a", "b", "a"], [0, 14, 14])
    acks.refuse(["a", "b"], [])  # no answer came
    acks.refuse([], [14])  # the sender named no channels: nothing to place
    assert acks.refused == Counter({"a": 2, "b": 2})


async def test_http_posts_refused_or_partly_refused_count_against_their_channel() -> None:
    script = Script(expected=9)  # answers POST 4 with 400 and POST 7 with an entry refused
    served = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await script.serve(reader, writer)
        await writer.wait_closed()
        served.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    publisher = HttpPublisher("127.0.0.1", server.sockets[0].getsockname()[1], in_flight=4)
    await publisher.connect()
    for i in range(9):
        channel = CHANNELS[i % len(CHANNELS)]
        await publisher.send(f"/pub/{channel}", b"{}", 1, channel)
    await publisher.close(timeout=10.0)
    await served.wait()
    server.close()
    await server.wait_closed()
    assert (publisher.acks.entries, publisher.acks.errors) == (7, 2)
    assert publisher.acks.refused == Counter({"c1": 2})  # POSTs 4 and 7 went to c1


async def test_a_grpc_stream_the_gateway_ends_refuses_what_follows_without_waiting() -> None:
    """A gateway whose broker fails ends the publish stream (UNAVAILABLE): the publisher
    counts what was unanswered and every later batch as not acknowledged, by channel,
    instead of waiting for room that no ack will free (the run never reported)."""

    async def publish(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        answered = 0
        async for raw in requests:
            if answered == 2:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "NATS unavailable")
            answered += 1
            request = pb.PublishRequest.FromString(raw)
            results = [pb.EntryResult(offset=i) for i in range(len(request.entries))]
            yield pb.PublishAck(sequence=request.sequence, results=results).SerializeToString()

    server = grpc.aio.server()
    handler = grpc.stream_stream_rpc_method_handler(publish)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("logs_gateway.v1.LogIngest", {"Publish": handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    publisher = GrpcPublisher(f"127.0.0.1:{port}", "token", "bench", in_flight=1)
    entry = pb.LogEntry(channel="logs:a:b", body="x").SerializeToString()
    item = wire.field(3, entry)  # a PublishRequest.entries item
    for n in range(6):  # one in flight: the 4th and later wait for room the 3rd never frees
        await publisher.send([item, item], ["c0", "c1"] if n % 2 else ["c0", "c0"])
    await publisher.close(timeout=10.0)
    await server.stop(None)
    assert publisher.ended
    assert (publisher.acks.entries, publisher.acks.errors) == (4, 8)
    assert publisher.acks.refused == Counter({"c0": 6, "c1": 2})
