"""Recent history on open (DESIGN §6): `tail=N` on the SSE stream, the proxy routes and gRPC
Subscribe gives the N newest retained entries that match, oldest first, then live, with
nothing lost or doubled at the seam; a cursor wins over it."""

from __future__ import annotations

import asyncio

import grpc
import httpx
import pytest
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

from tests.conftest import Running, entry, running_gateway
from tests.sse_client import open_stream

RUN = "logs:etl:ws1:run-1"
OTHER_RUN = "logs:etl:ws1:run-2"
ELSEWHERE = "logs:faas:ws2:fn"


async def publish_history(gw: Running) -> list[pb.PublishAck]:
    pub = gw.token(publish=["logs:>"])
    batch = [
        entry(RUN if i % 2 else OTHER_RUN, f"m{i}", 13 if i % 3 == 0 else 9) for i in range(12)
    ]
    return await gw.publish(pub, [batch, [entry(ELSEWHERE, "not mine")]])


async def test_a_stream_opens_with_the_newest_entries_then_follows_live(gw: Running) -> None:
    await publish_history(gw)
    token = gw.token(subscribe=["logs:etl:ws1:>"])
    async with open_stream(gw.http, "logs:etl:ws1:>", token, params={"tail": "5"}) as stream:
        ready = await stream.next()
        assert (ready.event == "ready" and ready.id is None) or ready.id == ""
        recent = await stream.take(5)
        assert [e.data["message"] for e in recent] == ["m7", "m8", "m9", "m10", "m11"]
        assert [e.data["channel"] for e in recent] == [RUN, OTHER_RUN, RUN, OTHER_RUN, RUN]
        await gw.publish(gw.token(publish=[RUN]), [[entry(RUN, "live")]], producer="live")
        live = await stream.next()
        assert (live.event, live.data["message"]) == ("log", "live")
    # The tail's ids are ordinary cursors: resuming from one gives what followed it, exactly.
    async with open_stream(gw.http, "logs:etl:ws1:>", token, last_event_id=recent[2].id) as again:
        await again.next()
        assert [e.data["message"] for e in await again.take(3)] == ["m10", "m11", "live"]


async def test_tail_counts_only_entries_of_the_level_asked_for(gw: Running) -> None:
    await publish_history(gw)
    token = gw.token(subscribe=["logs:etl:>"])
    params = {"tail": "3", "level": "warn"}
    async with open_stream(gw.http, "logs:etl:>", token, params=params) as stream:
        await stream.next()
        assert [e.data["message"] for e in await stream.take(3)] == ["m3", "m6", "m9"]


async def test_a_cursor_wins_over_tail(gw: Running) -> None:
    acks = await publish_history(gw)
    token = gw.token(subscribe=[RUN])
    cursor = acks[0].results[8].cursor  # after m8
    params = {"tail": "1", "last_event_id": cursor}
    async with open_stream(gw.http, RUN, token, params=params) as stream:
        await stream.next()
        assert [e.data["message"] for e in await stream.take(2)] == ["m9", "m11"]


@pytest.mark.parametrize("bad", ["-1", "ten", "1001", "2.5", "²", "9" * 5000])
async def test_a_bad_tail_is_a_400_naming_it(gw: Running, bad: str) -> None:
    token = gw.token(subscribe=[RUN])
    async with httpx.AsyncClient() as client:
        response = await client.get(
            gw.http + "/api/logs/stream",
            params={"channels": RUN, "tail": bad},
            headers=gw.headers(token),
        )
    assert response.status_code == 400
    assert "'tail' must be a whole number from 0 to 1000" in response.json()["error"]["message"]


async def test_the_proxy_routes_take_tail_too(gw: Running) -> None:
    channel = "logs:etl:ws9:wf9"
    pub = gw.token(publish=[channel])
    await gw.publish(pub, [[entry(channel, f"p{i}") for i in range(4)]])
    token = gw.token(subscribe=["logs:etl:ws9:>"])
    params = {"workspace_id": "ws9", "workflow_id": "wf9", "tail": "2"}
    path = "/api/dapadmin/l5-etl/sse/logs/stream"
    async with open_stream(gw.http, "", token, params=params, path=path) as stream:
        await stream.next()
        assert [e.data["message"] for e in await stream.take(2)] == ["p2", "p3"]


async def test_grpc_subscribe_takes_tail_and_refuses_one_past_the_bound() -> None:
    async with running_gateway(history_entries=50) as gw:
        await publish_history(gw)
        token = gw.token(subscribe=["logs:etl:>"])
        metadata = [("authorization", f"Bearer {token}")]

        def subscribe(tail: int, count: int) -> list[str]:
            with grpc.insecure_channel(gw.grpc_target) as channel:
                call = pb_grpc.LogStreamStub(channel).Subscribe(
                    pb.SubscribeRequest(channels=["logs:etl:>"], tail=tail), metadata=metadata
                )
                messages = []
                for event in call:
                    if event.HasField("entry"):
                        messages.append(event.entry.entry.body)
                    if len(messages) == count:
                        call.cancel()
                        break
                return messages

        assert await asyncio.to_thread(subscribe, 2, 2) == ["m10", "m11"]
        with pytest.raises(grpc.RpcError) as refused:
            await asyncio.to_thread(subscribe, 51, 1)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "tail must be from 0 to 50" in (refused.value.details() or "")
