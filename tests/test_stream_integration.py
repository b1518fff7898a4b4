"""A real `logs-gateway serve` process: publish over gRPC, receive over SSE."""

from __future__ import annotations

import grpc
import httpx
import jwt
import pytest
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

from tests.conftest import Running, entry
from tests.sse_client import open_stream

ETL = "logs:etl:workspace123:workflow456"
FAAS = "logs:faas:workspace123:function789"
OTHER = "logs:etl:workspace999:workflow1"


async def test_headers_and_ready_frame(gw_process: Running) -> None:
    token = gw_process.token(subscribe=[ETL])
    async with open_stream(gw_process.http, ETL, token) as stream:
        headers = stream.response.headers
        assert headers["content-type"] == "text/event-stream"
        assert headers["cache-control"] == "no-cache"
        assert headers["x-accel-buffering"] == "no"
        assert "content-encoding" not in headers
        ready = await stream.next()
        assert ready.event == "ready"
        assert ready.data["channels"] == [ETL]
        assert ready.data["connection"]


async def test_order_offsets_multichannel_and_patterns(gw_process: Running) -> None:
    sub = gw_process.token(subscribe=["logs:*:workspace123:>"])
    pub = gw_process.token("etl-service", publish=["logs:>"])
    async with (
        open_stream(gw_process.http, f"{ETL},{FAAS}", sub) as both,
        open_stream(gw_process.http, "logs:*:workspace123:>", sub) as pattern,
    ):
        await both.next()
        await pattern.next()
        batches = [
            [entry(ETL, f"etl {i}"), entry(FAAS, f"faas {i}"), entry(OTHER, f"x {i}")]
            for i in range(5)
        ]
        acks = await gw_process.publish(pub, batches, producer="order-test")
        assert [a.sequence for a in acks] == [1, 2, 3, 4, 5]
        assert all(r.code == 0 for a in acks for r in a.results)
        for stream in (both, pattern):
            events = await stream.take(10)
            assert [e.data["message"] for e in events] == [
                m for i in range(5) for m in (f"etl {i}", f"faas {i}")
            ]
            etl_offsets = [e.data["offset"] for e in events if e.data["channel"] == ETL]
            assert etl_offsets == sorted(etl_offsets)
            assert len(set(etl_offsets)) == 5
            assert all(e.data["source"] == "etl-service" for e in events)
            ids = [e.id for e in events]
            assert len(set(ids)) == 10


async def test_level_filter(gw_process: Running) -> None:
    sub = gw_process.token(subscribe=[ETL])
    pub = gw_process.token(publish=[ETL])
    async with open_stream(gw_process.http, ETL, sub, params={"level": "warn"}) as stream:
        await stream.next()
        await gw_process.publish(
            pub,
            [
                [
                    entry(ETL, "debug", 5),
                    entry(ETL, "warn", 13),
                    entry(ETL, "info", 9),
                    entry(ETL, "error", 17),
                ]
            ],
            producer="lvl",
        )
        events = await stream.take(2)
        assert [e.data["level"] for e in events] == ["warn", "error"]


async def test_message_cannot_forge_events(gw_process: Running) -> None:
    sub = gw_process.token(subscribe=[ETL])
    pub = gw_process.token(publish=[ETL])
    evil = "line one\n\nevent: ready\ndata: x\r\nid: 999\r\n\r\n"
    async with open_stream(gw_process.http, ETL, sub) as stream:
        await stream.next()
        await gw_process.publish(
            pub, [[entry(ETL, evil, key="a\nb"), entry(ETL, "after")]], producer="forge"
        )
        first = await stream.next()
        second = await stream.next()
        assert (first.event, first.data["message"], first.data["attributes"]["key"]) == (
            "log",
            evil,
            "a\nb",
        )
        assert (second.event, second.data["message"]) == ("log", "after")


@pytest.mark.parametrize(
    ("query", "status", "needle"),
    [
        ("channels=", 400, "at least one channel"),
        ("channels=logs:etl:bad%20name:x", 400, "segment"),
        ("channels=logs:etl:workspace1234:x", 403, "logs:etl:workspace1234:x"),
        ("channels=logs:>", 403, "logs:>"),
        (f"channels={ETL}&level=loud", 400, "unknown level"),
        (f"channels={ETL}&last_event_id=garbage", 400, "last_event_id"),
    ],
)
def test_stream_errors(gw_process: Running, query: str, status: int, needle: str) -> None:
    token = gw_process.token(subscribe=["logs:etl:workspace123:>"])
    r = httpx.get(f"{gw_process.http}/api/logs/stream?{query}", headers=gw_process.headers(token))
    assert r.status_code == status
    assert needle in r.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/api/logs/stream", "/api/dapadmin/etl/sse/logs/stream"])
def test_a_stream_has_no_head(gw_process: Running, path: str) -> None:
    """HEAD would answer headers and then stream the body a HEAD must not have."""
    token = gw_process.token(subscribe=["logs:etl:workspace123:>"])
    query = {"channels": ETL, "workspace_id": "workspace123", "workflow_id": "workflow456"}
    r = httpx.head(gw_process.http + path, params=query, headers=gw_process.headers(token))
    assert r.status_code == 405
    assert "GET" in r.headers["allow"]


def test_stream_requires_token(gw_process: Running) -> None:
    r = httpx.get(f"{gw_process.http}/api/logs/stream?channels={ETL}")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_grpc_subscribe_live_and_resume(gw_process: Running) -> None:
    sub = gw_process.token(subscribe=["logs:etl:>"])
    pub = gw_process.token(publish=["logs:>"])
    metadata = [("authorization", f"Bearer {sub}")]
    async with grpc.aio.insecure_channel(gw_process.grpc_target) as channel:
        stub = pb_grpc.LogStreamStub(channel)
        call = stub.Subscribe(
            pb.SubscribeRequest(channels=["logs:etl:>"], min_level="info"), metadata=metadata
        )
        ready = await call.read()  # first, as SSE's `ready`: the head as its cursor
        assert ready.HasField("ready") and list(ready.ready.channels) == ["logs:etl:>"]
        acks = await gw_process.publish(
            pub,
            [[entry(ETL, "one"), entry(ETL, "dbg", 5), entry(FAAS, "x"), entry(ETL, "two")]],
            producer="gsub",
        )
        first, second = await call.read(), await call.read()
        call.cancel()
        assert [first.entry.entry.body, second.entry.entry.body] == ["one", "two"]
        assert first.cursor == acks[0].results[0].cursor
        assert second.entry.offset == acks[0].results[3].offset
        resumed = stub.Subscribe(
            pb.SubscribeRequest(channels=[ETL], cursor=first.cursor), metadata=metadata
        )
        assert (await resumed.read()).cursor == ""  # a resume's own cursors follow
        missed = [await resumed.read() for _ in range(2)]
        resumed.cancel()
        assert [m.entry.entry.body for m in missed] == ["dbg", "two"]
        # A subscriber that saw nothing but `ready` resumes from its cursor, missing nothing.
        from_head = stub.Subscribe(
            pb.SubscribeRequest(channels=[ETL], cursor=ready.cursor), metadata=metadata
        )
        await from_head.read()
        everything = [await from_head.read() for _ in range(3)]
        from_head.cancel()
        assert [m.entry.entry.body for m in everything] == ["one", "dbg", "two"]


async def test_grpc_subscribe_keeps_times_to_the_nanosecond(gw_process: Running) -> None:
    sub = gw_process.token(subscribe=[ETL])
    stamped = entry(ETL, "stamped")
    stamped.time_unix_nano = 1_700_000_000_123_456_789
    acks = await gw_process.publish(gw_process.token(publish=[ETL]), [[stamped]], "nanos")
    metadata = [("authorization", f"Bearer {sub}")]
    async with grpc.aio.insecure_channel(gw_process.grpc_target) as channel:
        before = acks[0].results[0].cursor.rsplit("-", 1)
        cursor = f"{before[0]}-{int(before[1]) - 1}"
        call = pb_grpc.LogStreamStub(channel).Subscribe(
            pb.SubscribeRequest(channels=[ETL], cursor=cursor), metadata=metadata
        )
        await call.read()
        got = await call.read()
        call.cancel()
    assert got.entry.entry.time_unix_nano == 1_700_000_000_123_456_789


async def test_grpc_subscribe_refused_outside_rights(gw_process: Running) -> None:
    sub = gw_process.token(subscribe=["logs:etl:>"])
    async with grpc.aio.insecure_channel(gw_process.grpc_target) as channel:
        stub = pb_grpc.LogStreamStub(channel)
        call = stub.Subscribe(
            pb.SubscribeRequest(channels=["logs:faas:>"]),
            metadata=[("authorization", f"Bearer {sub}")],
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    "token",
    [
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4In0.",
        "not.a.jwt",
        jwt.encode(
            {"sub": "x", "iat": 0, "exp": 2**31, "iss": "logs-gateway", "aud": "logs-gateway"},
            "wrong-secret-" * 4,
            algorithm="HS256",
        ),
    ],
)
async def test_bad_tokens_refused_on_both_ports(gw_process: Running, token: str) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(
            f"{gw_process.http}/api/logs/stream?channels={ETL}", headers=gw_process.headers(token)
        )
    assert response.status_code == 401
    # No request is written: a grpc.aio write racing the server's refusal can surface as
    # INTERNAL on the client instead of the server's status (grpc/grpc#36066).
    stub, metadata = gw_process.ingest(token)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        _ = [ack async for ack in stub.Publish(iter(()), metadata=metadata)]
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
