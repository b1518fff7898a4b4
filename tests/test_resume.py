"""Exact resume with Last-Event-ID across every channel of a connection, and gaps past history."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.conftest import Running, entry, running_gateway
from tests.sse_client import open_stream

README = Path(__file__).resolve().parent.parent / "README.md"

ETL = "logs:etl:workspace123:workflow456"
FAAS = "logs:faas:workspace123:function789"


async def test_reconnect_gets_exactly_what_was_missed(gw: Running) -> None:
    sub = gw.token(subscribe=["logs:*:workspace123:>"])
    pub = gw.token(publish=["logs:>"])
    async with open_stream(gw.http, f"{ETL},{FAAS}", sub) as stream:
        await stream.next()
        await gw.publish(
            pub, [[entry(ETL, "e0"), entry(FAAS, "f0"), entry(ETL, "e1")]], producer="a"
        )
        seen = await stream.take(3)
        cursor = stream.last_id
    # Disconnected: more entries on both channels, and on a channel not subscribed.
    await gw.publish(
        pub,
        [
            [entry(FAAS, "f1"), entry("logs:etl:workspace999:x", "other"), entry(ETL, "e2")],
            [entry(FAAS, "f2")],
        ],
        producer="b",
    )
    async with open_stream(gw.http, f"{ETL},{FAAS}", sub, last_event_id=cursor) as stream:
        ready = await stream.next()
        assert ready.event == "ready" and ready.id == ""  # a resume keeps the client's cursor
        missed = await stream.take(3)
        assert [e.data["message"] for e in missed] == ["f1", "e2", "f2"]
        await gw.publish(pub, [[entry(ETL, "live")]], producer="c")
        live = await stream.next()
        assert live.data["message"] == "live"
    assert [e.data["message"] for e in seen] == ["e0", "f0", "e1"]


async def test_resume_with_pattern_includes_new_channels(gw: Running) -> None:
    sub = gw.token(subscribe=["logs:etl:>"])
    pub = gw.token(publish=["logs:>"])
    async with open_stream(gw.http, "logs:etl:>", sub) as stream:
        ready = await stream.next()
        cursor = ready.id  # a live start is given the head as its cursor
    await gw.publish(
        pub, [[entry("logs:etl:brand:new", "n1"), entry("logs:faas:x:y", "no")]], producer="p"
    )
    async with open_stream(gw.http, "logs:etl:>", sub, last_event_id=cursor) as stream:
        await stream.next()
        assert [e.data["message"] for e in await stream.take(1)] == ["n1"]


async def test_the_readme_shows_the_ready_event_a_live_start_sends(gw: Running) -> None:
    # The README's stream example is a live start (no tail, no Last-Event-ID): its first
    # frame has the fields the gateway sends, in their order, an id among them.
    example = re.search(r"### The SSE stream\n\n```\n(.*?)\n\n", README.read_text(), re.S)
    assert example is not None
    shown = [line.split(":", 1)[0] for line in example.group(1).splitlines()]
    headers = {"Authorization": f"Bearer {gw.token(subscribe=['logs:>'])}"}
    async with (
        httpx.AsyncClient(timeout=5) as client,
        client.stream("GET", gw.http + "/api/logs/stream?channels=logs:>", headers=headers) as got,
    ):
        first = b""
        async for chunk in got.aiter_bytes():
            first += chunk
            if b"\n\n" in first:
                break
    sent = [line.split(b":", 1)[0].decode() for line in first.split(b"\n\n")[0].splitlines()]
    assert shown == sent == ["retry", "id", "event", "data"]


async def test_query_cursor_resumes_like_the_header(gw: Running) -> None:
    sub = gw.token(subscribe=[ETL])
    pub = gw.token(publish=[ETL])
    acks = await gw.publish(pub, [[entry(ETL, "a"), entry(ETL, "b"), entry(ETL, "c")]])
    after_a = acks[0].results[0].cursor
    async with open_stream(gw.http, ETL, sub, params={"last_event_id": after_a}) as stream:
        await stream.next()
        assert [e.data["message"] for e in await stream.take(2)] == ["b", "c"]


async def test_beyond_history_gives_gap_then_live() -> None:
    async with running_gateway(history_entries=3) as gw:
        sub = gw.token(subscribe=[ETL])
        pub = gw.token(publish=[ETL])
        acks = await gw.publish(pub, [[entry(ETL, "first")]])
        cursor = acks[0].results[0].cursor
        batch = await gw.publish(pub, [[entry(ETL, f"m{i}") for i in range(5)]], producer="q")
        async with open_stream(gw.http, ETL, sub, last_event_id=cursor) as stream:
            await stream.next()
            gap = await stream.next()
            assert gap.event == "gap"
            assert gap.data == {"channel": ETL, "lost": 2, "reason": "trimmed", "channels": 1}
            # Its id is the newest lost entry's cursor: resuming there loses nothing more.
            assert gap.id == batch[0].results[1].cursor
            assert [e.data["message"] for e in await stream.take(3)] == ["m2", "m3", "m4"]
            await gw.publish(pub, [[entry(ETL, "live")]], producer="r")
            assert (await stream.next()).data["message"] == "live"
        # From the gap's id only what was lost since is reported: m2, trimmed by "live".
        async with open_stream(gw.http, ETL, sub, last_event_id=gap.id) as stream:
            await stream.next()
            assert (await stream.next()).data["lost"] == 1
            assert [e.data["message"] for e in await stream.take(3)] == ["m3", "m4", "live"]


async def test_cursor_of_another_epoch_resets() -> None:
    async with running_gateway() as gw:
        sub = gw.token(subscribe=[ETL])
        pub = gw.token(publish=[ETL])
        await gw.publish(pub, [[entry(ETL, "kept")]])
        async with open_stream(gw.http, ETL, sub, last_event_id="deadbeef-99") as stream:
            await stream.next()
            gap = await stream.next()
            assert gap.event == "gap" and gap.data["reason"] == "reset"
            assert (await stream.next()).data["message"] == "kept"


async def test_malformed_last_event_id_header_starts_live(gw: Running) -> None:
    sub = gw.token(subscribe=[ETL])
    pub = gw.token(publish=[ETL])
    await gw.publish(pub, [[entry(ETL, "old")]])
    async with open_stream(gw.http, ETL, sub, last_event_id="not a cursor::") as stream:
        ready = await stream.next()
        assert ready.event == "ready" and ready.id
        await gw.publish(pub, [[entry(ETL, "new")]], producer="n")
        assert (await stream.next()).data["message"] == "new"


async def test_disconnect_frees_state_at_once(gw: Running) -> None:
    assert gw.gateway is not None
    hub = gw.gateway.hub
    sub = gw.token(subscribe=[ETL])
    async with open_stream(gw.http, ETL, sub) as stream:
        await stream.next()
        assert hub.subscriptions == 1
    from tests.conftest import wait_for

    await wait_for(lambda: hub.subscriptions == 0)
    assert hub.stats()["subscribers_per_channel"] == {}


async def test_a_quiet_stream_s_heartbeat_moves_its_cursor_to_the_newest_entry() -> None:
    async with running_gateway(heartbeat_seconds=0.2) as gw:
        sub = gw.token(subscribe=[ETL])
        pub = gw.token(publish=[ETL, "logs:faas:>"])
        async with open_stream(gw.http, ETL, sub) as stream:
            await stream.next()
            acks = await gw.publish(pub, [[entry("logs:faas:ws1:fn1", "elsewhere")]])
            beat = await stream.next(pings=True)
            # An id with no data: EventSource keeps it as lastEventId and dispatches nothing.
            assert (beat.event, beat.data) == ("message", None)
            assert beat.id == acks[0].results[0].cursor
        await gw.publish(pub, [[entry(ETL, "after")]], producer="later")
        async with open_stream(gw.http, ETL, sub, last_event_id=beat.id) as stream:
            await stream.next()
            following = await stream.next()
            assert (following.event, following.data["message"]) == ("log", "after")
