"""The benchmark's Python publishers count the entries not acknowledged by channel, so a
delivery row owes subscribers only what was acknowledged: a refused publish counts once in
`lost`, not once more for every subscriber of its channel (106,656 "lost" in one NATS run
were 1,056 refused entries, each counted once and again for each of 100 subscribers)."""

from __future__ import annotations

import asyncio
from collections import Counter

from bench.publish_load import Acks, HttpPublisher
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
