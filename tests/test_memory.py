"""Stored events cost their size, not an encoder's scratch buffer; open streams cost what
they need, not a whole HTTP request each."""

from __future__ import annotations

import contextlib
import gc
import tracemalloc

from aiohttp import web

from gateway.core.events import Entry, make_event
from tests.conftest import Running, entry
from tests.sse_client import open_stream

ETL = "logs:etl:ws:wf"
STREAMS = 40


def test_a_stored_event_holds_a_right_sized_json_line() -> None:
    entry = Entry("logs:etl:ws:wf", 1, 9, "extract done", "etl", {"rows": 120})
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        events = [make_event(entry, i, i) for i in range(1000)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert len(events[0].data) < 250
    assert grown / len(events) < 600, f"{grown / len(events):.0f} bytes per event"


async def test_an_open_stream_holds_no_aiohttp_request(gw: Running) -> None:
    """Once set up, a stream is handed to the hub: aiohttp's request, parser, writer and
    tasks (11 of the 15.5 kB of heap an idle stream took) are let go, and it still streams."""
    pub = gw.token("etl-service", publish=[ETL])
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        async with contextlib.AsyncExitStack() as stack:
            streams = []
            for _ in range(STREAMS):  # a token each: the per-token stream limit is 16
                token = gw.token("alice", subscribe=[ETL])
                streams.append(await stack.enter_async_context(open_stream(gw.http, ETL, token)))
            for stream in streams:
                assert (await stream.next()).event == "ready"
            gc.collect()
            after = tracemalloc.take_snapshot()
            assert not [o for o in gc.get_objects() if isinstance(o, web.BaseRequest)]
            assert gw.gateway is not None
            assert gw.gateway.hub.subscriptions == STREAMS
            await gw.publish(pub, [[entry(ETL, "still live")]])
            for stream in streams:
                assert (await stream.take(1))[0].data["message"] == "still live"
    finally:
        tracemalloc.stop()
    held = [s for s in after.compare_to(before, "filename") if "/aiohttp/" in str(s.traceback)]
    per_stream = sum(s.size_diff for s in held) / STREAMS
    assert per_stream < 300, f"aiohttp holds {per_stream:.0f} bytes per open stream"
