"""Every status code of DESIGN §5 and every HTTP error, triggered for real over the network."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from logs_gateway.v1 import logs_pb2 as pb

from tests.conftest import Running, entry, running_gateway
from tests.sse_client import open_stream

ETL = "logs:etl:workspace123:workflow456"
CODE = {c.name: c.value[0] for c in grpc.StatusCode}


async def publish_error(
    gw: Running, token: str, batches: list[list[pb.LogEntry]]
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await gw.publish(token, batches)
    return err.value


async def test_no_token_is_unauthenticated(gw: Running) -> None:
    stub, _ = gw.ingest("")
    call = stub.Publish(iter([pb.PublishRequest(entries=[entry(ETL, "x")])]))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        _ = [a async for a in call]
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_expired_token_is_unauthenticated(gw: Running) -> None:
    now = int(time.time())
    token = gw.token(publish=[ETL], extra={"iat": now - 100, "exp": now - 60})
    error = await publish_error(gw, token, [[entry(ETL, "x")]])
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in (error.details() or "")


@pytest.fixture
async def no_leeway() -> AsyncIterator[Running]:
    """A gateway whose tokens end exactly at `exp` (the leeway adds to it otherwise)."""
    async with running_gateway(jwt_leeway=0.0) as run:
        yield run


async def test_stream_outliving_its_token_is_ended(no_leeway: Running) -> None:
    # `exp` is in whole seconds: a ttl of 2 leaves 1-2 s, time enough for the first ack.
    gw = no_leeway
    token = gw.token(publish=[ETL], ttl=2)
    stub, metadata = gw.ingest(token)
    call = stub.Publish(metadata=metadata)
    await call.write(
        pb.PublishRequest(producer_id="p", sequence=1, entries=[entry(ETL, "in time")])
    )
    ack = await call.read()
    assert ack.results[0].code == 0
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert time.monotonic() - started < 5


async def test_entry_codes(gw: Running) -> None:
    token = gw.token(publish=["logs:etl:workspace123:>"])
    big = entry(ETL, "x" * 70_000)
    acks = await gw.publish(
        token, [[entry(ETL, "ok"), entry("logs:faas:w:f", "no"), entry("bad", "x"), big]]
    )
    codes = [r.code for r in acks[0].results]
    assert codes == [
        0,
        CODE["PERMISSION_DENIED"],
        CODE["INVALID_ARGUMENT"],
        CODE["RESOURCE_EXHAUSTED"],
    ]
    messages = [r.message for r in acks[0].results]
    assert messages[1].startswith("entry 1:") and "logs:faas:w:f" in messages[1]
    assert messages[2].startswith("entry 2:") and "logs:" in messages[2]
    assert messages[3].startswith("entry 3:") and "65536" in messages[3]


async def test_oversized_message_is_resource_exhausted() -> None:
    async with running_gateway(max_message_bytes=10_000) as gw:
        token = gw.token(publish=[ETL])
        error = await publish_error(gw, token, [[entry(ETL, "y" * 5000), entry(ETL, "z" * 6000)]])
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_draining_is_unavailable_and_acked_batches_survive() -> None:
    async with running_gateway() as gw:
        assert gw.gateway is not None
        token = gw.token(publish=[ETL])
        stub, metadata = gw.ingest(token)
        call = stub.Publish(metadata=metadata)
        await call.write(
            pb.PublishRequest(producer_id="p", sequence=1, entries=[entry(ETL, "acked")])
        )
        assert (await call.read()).results[0].code == 0
        stop = asyncio.create_task(gw.gateway.stop())
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        assert err.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "draining" in (err.value.details() or "")
        await stop


# -- HTTP -----------------------------------------------------------------------------


async def post(
    gw: Running, body: object, token: str | None = None, cookies: dict[str, str] | None = None
) -> httpx.Response:
    headers = gw.headers(token) if token else {}
    async with httpx.AsyncClient(cookies=cookies) as client:
        return await client.post(f"{gw.http}/api/logs/publish", json=body, headers=headers)


async def post_raw(
    gw: Running, content: bytes | AsyncIterator[bytes], token: str
) -> httpx.Response:
    headers = gw.headers(token) | {"Content-Type": "application/json"}
    async with httpx.AsyncClient() as client:
        return await client.post(f"{gw.http}/api/logs/publish", content=content, headers=headers)


async def chunks(total: int, size: int = 65536) -> AsyncIterator[bytes]:
    """A body without Content-Length (chunked): its size is known only by reading it."""
    for _ in range(total // size):
        yield b"x" * size


async def test_http_publish_and_errors(gw: Running) -> None:
    token = gw.token("web-svc", publish=["logs:etl:workspace123:>"])
    ok = await post(gw, {"channel": ETL, "level": "warn", "message": "hi"}, token)
    assert ok.status_code == 200 and ok.json()["results"][0]["offset"] == 0
    cases = [
        (await post(gw, {"channel": ETL, "message": "x"}), 401),
        (
            await post(gw, {"channel": ETL, "message": "x"}, None, {"logs_gateway_token": token}),
            401,
        ),
        (await post(gw, {"channel": "logs:faas:w:f", "message": "x"}, token), 403),
        (await post(gw, {"channel": "nope", "message": "x"}, token), 400),
        (await post(gw, {"channel": ETL, "message": 5}, token), 400),
        (await post(gw, {"channel": ETL, "message": "x", "level": "loud"}, token), 400),
        (await post(gw, {"entries": []}, token), 400),
        (await post(gw, {"channel": ETL, "message": "x" * 70_000}, token), 413),
        (await post_raw(gw, b"{not json", token), 400),
        (await post_raw(gw, b"x" * 5_000_000, token), 413),
        (await post_raw(gw, chunks(5_000_000), token), 413),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.json()["error"]["message"]


async def test_http_batch_answers_per_entry(gw: Running) -> None:
    token = gw.token(publish=[ETL])
    body = {"entries": [{"channel": ETL, "message": "a"}, {"channel": "logs:x:y", "message": "b"}]}
    response = await post(gw, body, token)
    results = response.json()["results"]
    assert response.status_code == 200
    assert "offset" in results[0] and results[1]["error"]["code"] == "permission_denied"


async def test_connections_per_token_limited() -> None:
    async with running_gateway(max_connections_per_token=2) as gw:
        token = gw.token(subscribe=[ETL])
        async with open_stream(gw.http, ETL, token) as a, open_stream(gw.http, ETL, token) as b:
            await a.next()
            await b.next()
            async with httpx.AsyncClient() as client:
                third = await client.get(
                    f"{gw.http}/api/logs/stream?channels={ETL}", headers=gw.headers(token)
                )
            assert third.status_code == 429
            other = gw.token(subscribe=[ETL])
            async with open_stream(gw.http, ETL, other) as c:
                assert (await c.next()).event == "ready"


async def test_too_many_channels() -> None:
    async with running_gateway(max_channels=2) as gw:
        token = gw.token(subscribe=["logs:>"])
        url = f"{gw.http}/api/logs/stream?channels=logs:a:b,logs:a:c,logs:a:d"
        async with httpx.AsyncClient() as client:
            response = await client.get(url, headers=gw.headers(token))
        assert response.status_code == 400 and "at most 2" in response.json()["error"]["message"]


async def test_sse_ends_when_token_expires(no_leeway: Running) -> None:
    gw = no_leeway
    token = gw.token(subscribe=[ETL], ttl=2)  # whole seconds: 1 could leave none to connect
    async with open_stream(gw.http, ETL, token) as stream:
        await stream.next()
        error = await stream.next(timeout=5)
        assert error.event == "error" and error.data["reason"] == "token_expired"
        with pytest.raises(StopAsyncIteration):
            await stream.next()


async def test_a_token_inside_the_leeway_lives_until_exp_plus_leeway_then_says_why(
    gw: Running,
) -> None:
    """`exp` already past but within the 5 s leeway: accepted, and the stream then lasts
    until the same instant the verifier stops accepting it (not ended at once)."""
    exp = int(time.time()) - 2
    token = gw.signer.mint("late", subscribe=[ETL], extra={"iat": exp - 60, "exp": exp})
    async with open_stream(gw.http, ETL, token) as stream:
        assert (await stream.next()).event == "ready"
        await gw.publish(gw.token(publish=[ETL]), [[entry(ETL, "still open")]])
        assert (await stream.next()).data["message"] == "still open"
        error = await stream.next(timeout=10)
        assert error.event == "error" and error.data["reason"] == "token_expired"
        assert time.time() >= exp + 5.0
    async with httpx.AsyncClient() as client:
        url = f"{gw.http}/api/logs/stream?channels={ETL}"
        assert (await client.get(url, headers=gw.headers(token))).status_code == 401


async def test_ops_endpoints(gw: Running) -> None:
    async with httpx.AsyncClient(base_url=gw.http) as client:
        # Dev mode names the process answering (the demo checks it is its own gateway).
        health = {"status": "ok", "mode": "dev", "pid": os.getpid()}
        assert (await client.get("/health")).json() == health
        assert (await client.get("/ready")).json()["ready"] is True
        assert (await client.get("/admin/logs/stats")).status_code == 401
        user = gw.token(subscribe=["logs:>"])
        assert (await client.get("/admin/logs/stats", headers=gw.headers(user))).status_code == 403
        stats = await client.get("/admin/logs/stats", headers=gw.headers(gw.token(admin=True)))
        assert stats.status_code == 200 and stats.json()["connections"] == 0
        assert (await client.post("/test/logs?count=2")).json()["offsets"] == [0, 1]


async def test_test_route_and_process_id_only_in_dev_mode() -> None:
    async with running_gateway(dev=False) as gw, httpx.AsyncClient(base_url=gw.http) as client:
        assert (await client.post("/test/logs")).status_code == 404
        assert (await client.get("/health")).json() == {"status": "ok"}


async def test_unknown_routes_and_methods_answer_the_json_error_of_every_other_answer(
    gw: Running,
) -> None:
    async with httpx.AsyncClient(base_url=gw.http) as client:
        missing = await client.get("/api/logs/nope")
        wrong_method = await client.put("/api/logs/publish")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("application/json")
    assert missing.json() == {
        "error": {"code": "not_found", "message": "Not Found: GET /api/logs/nope"}
    }
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "POST"
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    # Served by routes of their own now, through the same pass as every other answer.
    assert missing.headers["X-Request-Id"] and wrong_method.headers["X-Request-Id"]


async def test_a_request_for_no_path_at_all_answers_the_same_json_404(gw: Running) -> None:
    """`OPTIONS *` matches no route pattern (they all start with /); it is still answered
    through the serving pass, as every other request is."""
    host, port = gw.http.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = (await reader.read()).partition(b"\r\n\r\n")
    writer.close()
    assert head.startswith(b"HTTP/1.1 404") and b"X-Request-Id" in head
    assert body == b'{"error": {"code": "not_found", "message": "Not Found: OPTIONS *"}}'
