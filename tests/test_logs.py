"""A real process's stderr: one JSON object per line, a request id on request lines, and
never a token or the signing secret, whether a request was let in or refused."""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
from typing import Any

import grpc
import httpx
import pytest

from gateway.api import request_ids
from tests.conftest import SECRET, Running, entry, gateway_process
from tests.sse_client import open_stream

ETL = "logs:etl:workspace123:workflow456"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+")


async def exercise(run: Running) -> list[str]:
    """Authenticated and refused calls over HTTP, SSE and gRPC; returns every token used."""
    service = run.token("etl-service", publish=[ETL])
    user = run.token("alice", subscribe=[ETL])
    admin = run.token("ops", admin=True)
    expired = run.signer.mint("late", subscribe=[ETL], extra={"exp": 1})
    forged = service[:-4] + ("AAAA" if not service.endswith("AAAA") else "BBBB")
    body = {"channel": ETL, "message": "hello"}
    async with httpx.AsyncClient(base_url=run.http) as client:
        published = await client.post(
            "/api/logs/publish",
            json=body,
            headers=run.headers(service) | {"X-Request-Id": "rid-publish-1"},
        )
        assert published.status_code == 200
        assert published.headers["X-Request-Id"] == "rid-publish-1"
        assert (await client.get("/admin/logs/stats", headers=run.headers(admin))).is_success
        refused = await client.post("/api/logs/publish", json=body, headers=run.headers(forged))
        assert refused.status_code == 401
        in_query = await client.get("/api/logs/stream", params={"channels": ETL, "token": user})
        assert in_query.status_code == 401  # query-string tokens are off
        cookie = await client.get(
            "/api/logs/stream",
            params={"channels": ETL},
            headers={"Cookie": f"logs_gateway_token={expired}"},
        )
        assert cookie.status_code == 401
    async with open_stream(run.http, ETL, user) as stream:
        await stream.next()
    await run.publish(service, [[entry(ETL, "over grpc")]])
    with pytest.raises(grpc.aio.AioRpcError) as refused_rpc:
        await run.publish(forged, [[entry(ETL, "refused")]])
    assert refused_rpc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await run.close()
    return [service, user, admin, expired, forged]


def records(run: Running) -> list[dict[str, Any]]:
    assert run.output is not None
    lines = (run.output / "stderr").read_text().splitlines()
    assert lines
    return [json.loads(line) for line in lines]  # every line is one JSON object


def matching(logs: list[dict[str, Any]], **fields: Any) -> list[dict[str, Any]]:
    return [r for r in logs if all(r.get(k) == v for k, v in fields.items())]


async def test_logs_are_json_lines_with_ids_and_no_secrets() -> None:
    with gateway_process("--log-level", "debug") as run:
        tokens = await exercise(run)
    text = (run.output / "stderr").read_text() if run.output else ""
    for secret in (*tokens, SECRET):
        assert secret not in text
    assert not JWT.search(text)
    assert "token=" not in text  # the query string is never logged
    logs = records(run)
    assert all({"time", "level", "logger", "message"} <= set(r) for r in logs)
    (published,) = matching(logs, message="http request", path="/api/logs/publish", status=200)
    assert published["request_id"] == "rid-publish-1"
    (refused,) = matching(logs, message="http auth refused", reason="bad_signature")
    assert refused["request_id"]  # ties the refusal to its request line
    assert matching(logs, message="http request", request_id=refused["request_id"], status=401)
    assert matching(logs, message="grpc call", method="LogIngest/Publish", code="OK")
    assert matching(logs, message="grpc call", method="LogIngest/Publish", code="UNAUTHENTICATED")
    assert matching(logs, message="stopped")


async def test_text_format_writes_plain_lines_that_say_what_happened() -> None:
    """The same facts as the JSON lines, as key=value: an access line names the method,
    path and status, a refusal its reason."""
    with gateway_process("--log-format", "text") as run:
        await exercise(run)
    assert run.output is not None
    lines = (run.output / "stderr").read_text().splitlines()
    assert any(" INFO logs_gateway: logs-gateway started" in line for line in lines)
    assert not any(line.startswith("{") for line in lines)
    access = re.compile(
        r" INFO logs_gateway.http: http request request_id=rid-publish-1 method=POST "
        r"path=/api/logs/publish status=200 duration_ms=[0-9.]+$"
    )
    assert any(access.search(line) for line in lines)
    assert any(
        "http auth refused request_id=" in line and "reason=bad_signature" in line for line in lines
    )


@pytest.mark.parametrize("incoming", [None, "", "has space", 'quote"', "x" * 65, "line\nbreak"])
def test_a_malformed_request_id_is_replaced(incoming: str | None) -> None:
    rid = adopt(incoming)
    assert rid != incoming
    assert re.fullmatch(r"[0-9a-f]{16}", rid)


def test_a_well_formed_request_id_is_kept() -> None:
    nginx_id = "3f2a9c1e41b04d2a8e0c5b7d9f1a2b3c"  # $request_id: 32 hex digits
    assert adopt(nginx_id) == nginx_id


def adopt(incoming: str | None) -> str:
    """request_ids.adopt in a context of its own (as each request has), left unchanged."""
    context = contextvars.copy_context()
    rid = context.run(request_ids.adopt, incoming)
    assert context[request_ids.current] == rid
    assert not request_ids.current.get()
    return rid


async def test_a_stream_is_logged_when_it_ends() -> None:
    """499 when the client went away, 200 when the gateway ended it (here: a drain), each
    with the stream's whole duration and its own request id."""
    with gateway_process() as run:
        user = run.token("alice", subscribe=[ETL])
        async with open_stream(run.http, ETL, user) as left:
            await left.next()
            await asyncio.sleep(0.3)
        held = open_stream(run.http, ETL, user)
        await (await held.__aenter__()).next()
    await held.__aexit__(None, None, None)
    lines = matching(records(run), message="http request", path="/api/logs/stream")
    by_status = {line["status"]: line for line in lines}
    assert sorted(by_status) == [200, 499]
    assert by_status[499]["duration_ms"] >= 300
    assert by_status[200]["request_id"] != by_status[499]["request_id"]
