"""The proxy routes (DESIGN §7), in the gateway and as the standalone `logs-gateway proxy`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import httpx
import pytest
from httpx_sse import aconnect_sse

from gateway.api.http.auth import COOKIE
from gateway.api.http.proxy import ROUTES, Route, find_route, route_channel
from gateway.api.http.proxy_upstream import upstream_headers
from gateway.app.proxy_server import ProxyServer
from gateway.core.errors import Code, GatewayError
from tests.conftest import (
    Running,
    entry,
    free_port,
    gateway_process,
    make_config,
    running_gateway,
    wait_for,
    wait_http,
)
from tests.sse_client import Event, Stream

IDS = {"workspace_id": "wsA", "workflow_id": "wf1", "function_id": "fn1"}
CHANNELS = {
    "l5-etl": "logs:etl:wsA:wf1",
    "faas": "logs:faas:wsA:fn1",
    "analytics": "logs:analytics:wsA",
}


def path(app: str) -> str:
    return f"/api/dapadmin/{app}/sse/logs/stream"


def workspace_token(run: Running, workspace: str, subject: str = "alice") -> str:
    return run.token(subject, subscribe=[f"logs:*:{workspace}", f"logs:*:{workspace}:>"])


@contextlib.asynccontextmanager
async def proxied(
    base: str,
    app: str,
    params: dict[str, str],
    *,
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Stream]:
    """An SSE stream on a proxy route, authenticated the browser's way (the cookie)."""
    cookies = {COOKIE: cookie} if cookie else {}
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=None), cookies=cookies) as client,
        aconnect_sse(
            client, "GET", base + path(app), params=params, headers=dict(headers or {})
        ) as source,
    ):
        yield Stream(source.aiter_sse(), source.response)


async def refusal(
    base: str, app: str, params: dict[str, str], **kwargs: dict[str, str]
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5, **kwargs) as client:  # type: ignore[arg-type]
        return await client.get(base + path(app), params=params)


# -- the route table ------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.app)
def test_each_route_maps_its_ids_to_its_channel(route: Route) -> None:
    assert route_channel(route, IDS) == CHANNELS[route.app]


def test_route_params_come_from_the_template() -> None:
    assert find_route("l5-etl").params == ("workspace_id", "workflow_id")
    assert find_route("analytics").params == ("workspace_id",)
    extended = (*ROUTES, Route("batch", "logs:batch:{workspace_id}:{job_id}"))
    assert route_channel(find_route("batch", extended), {"workspace_id": "w", "job_id": "j"}) == (
        "logs:batch:w:j"
    )


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"workspace_id": "wsA"}, "'workflow_id' is required"),
        ({"workspace_id": "", "workflow_id": "wf"}, "'workspace_id' is required"),
        ({"workspace_id": "ws:B", "workflow_id": "wf"}, "'workspace_id' must be"),
        ({"workspace_id": "*", "workflow_id": "wf"}, "'workspace_id' must be"),
        ({"workspace_id": "wsA", "workflow_id": ">"}, "'workflow_id' must be"),
        ({"workspace_id": "w" * 65, "workflow_id": "wf"}, "'workspace_id' must be"),
    ],
)
def test_bad_ids_are_refused_naming_the_parameter(query: dict[str, str], named: str) -> None:
    with pytest.raises(GatewayError) as caught:
        route_channel(find_route("l5-etl"), query)
    assert caught.value.code is Code.INVALID_ARGUMENT
    assert named in caught.value.message


def test_unknown_app_is_not_found() -> None:
    with pytest.raises(GatewayError) as caught:
        find_route("billing")
    assert caught.value.code is Code.NOT_FOUND
    assert "l5-etl, faas, analytics" in caught.value.message


def test_only_the_token_and_resume_point_travel_upstream() -> None:
    headers = {"X-User-Id": "admin", "Last-Event-ID": "ab-7", "X-Forwarded-User": "root"}
    cookies = {COOKIE: "tok", "session": "other-app-secret"}
    assert upstream_headers(headers, cookies) == {
        "Accept": "text/event-stream",
        "Cookie": f"{COOKIE}=tok",
        "Last-Event-ID": "ab-7",
    }
    with_header = upstream_headers({"Authorization": "Bearer t"}, cookies)
    assert with_header == {"Accept": "text/event-stream", "Authorization": "Bearer t"}


# -- in the gateway -------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.app)
async def test_route_streams_its_channel_from_the_hub(gw: Running, route: Route) -> None:
    cookie = workspace_token(gw, "wsA")
    async with proxied(gw.http, route.app, IDS, cookie=cookie) as stream:
        ready = await stream.next()
        assert ready.data["channels"] == [CHANNELS[route.app]]
        publisher = gw.token("svc", publish=["logs:>"])
        await gw.publish(publisher, [[entry("logs:etl:wsA:other", "not mine")]])
        await gw.publish(publisher, [[entry(CHANNELS[route.app], "mine")]], producer="p2")
        [event] = await stream.take(1)
        assert event.data["message"] == "mine"


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.app)
async def test_workspace_a_cookie_cannot_read_workspace_b(gw: Running, route: Route) -> None:
    cookie = workspace_token(gw, "wsA")
    ids_b = IDS | {"workspace_id": "wsB"}
    for headers in ({}, {"X-User-Id": "wsB-owner"}, {"X-User-Id": "admin", "X-Admin": "1"}):
        response = await refusal(
            gw.http, route.app, ids_b, cookies={COOKIE: cookie}, headers=headers
        )
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["code"] == "permission_denied"
        assert route_channel(route, ids_b) in error["message"]


async def test_a_user_id_header_is_no_identity(gw: Running) -> None:
    response = await refusal(gw.http, "analytics", IDS, headers={"X-User-Id": "alice"})
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "missing bearer token"


async def test_bearer_header_works_as_well_as_the_cookie(gw: Running) -> None:
    token = workspace_token(gw, "wsA")
    async with proxied(gw.http, "analytics", IDS, headers=gw.headers(token)) as stream:
        assert (await stream.next()).data["channels"] == ["logs:analytics:wsA"]


async def test_bad_input_answers_400_and_404(gw: Running) -> None:
    cookies = {COOKIE: workspace_token(gw, "wsA")}
    missing = await refusal(gw.http, "faas", {"workspace_id": "wsA"}, cookies=cookies)
    assert missing.status_code == 400
    assert "'function_id' is required" in missing.json()["error"]["message"]
    unknown = await refusal(gw.http, "billing", IDS, cookies=cookies)
    assert unknown.status_code == 404
    level = await refusal(gw.http, "analytics", IDS | {"level": "loud"}, cookies=cookies)
    assert level.status_code == 400


# -- the standalone proxy -------------------------------------------------------------


@contextlib.asynccontextmanager
async def proxy_for(upstream: str) -> AsyncIterator[str]:
    server = ProxyServer(replace(make_config(), http_port=0), upstream)
    port = await server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.stop()


async def raw_chunks(response: httpx.Response, until: bytes, timeout: float = 5.0) -> bytes:
    seen = b""
    async with asyncio.timeout(timeout):
        async for chunk in response.aiter_raw():
            seen += chunk
            if until in seen:
                return seen
    raise AssertionError(f"stream ended before {until!r}: {seen!r}")


async def test_upstream_proxy_relays_stream_resume_and_heartbeats() -> None:
    async with running_gateway(heartbeat_seconds=0.2) as gw, proxy_for(gw.http) as proxy:
        cookie = workspace_token(gw, "wsA")
        publisher = gw.token("svc", publish=["logs:>"])
        async with proxied(proxy, "l5-etl", IDS, cookie=cookie) as stream:
            assert stream.response.headers["content-type"] == "text/event-stream"
            assert (await stream.next()).data["channels"] == ["logs:etl:wsA:wf1"]
            batch = [entry(CHANNELS["l5-etl"], f"m{i}") for i in range(3)]
            await gw.publish(publisher, [batch])
            events: list[Event] = await stream.take(3)
        resume = {"Last-Event-ID": events[0].id}
        async with proxied(proxy, "l5-etl", IDS, cookie=cookie, headers=resume) as stream:
            assert [e.data["message"] for e in await stream.take(2)] == ["m1", "m2"]
        async with (
            httpx.AsyncClient(cookies={COOKIE: cookie}, timeout=5) as client,
            client.stream("GET", proxy + path("analytics"), params=IDS) as response,
        ):
            await raw_chunks(response, b": ping\n\n")


async def test_upstream_proxy_passes_refusals_through() -> None:
    async with running_gateway() as gw, proxy_for(gw.http) as proxy:
        cookie = workspace_token(gw, "wsA")
        ids_b = IDS | {"workspace_id": "wsB"}
        denied = await refusal(proxy, "faas", ids_b, cookies={COOKIE: cookie})
        direct = await refusal(gw.http, "faas", ids_b, cookies={COOKIE: cookie})
        assert (denied.status_code, denied.json()) == (direct.status_code, direct.json())
        assert denied.status_code == 403
        anonymous = await refusal(proxy, "faas", IDS, headers={"X-User-Id": "alice"})
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await refusal(proxy, "faas", {"workspace_id": "wsA"})).status_code == 400


async def test_upstream_stream_closes_when_the_browser_leaves() -> None:
    async with running_gateway() as gw, proxy_for(gw.http) as proxy:
        assert gw.gateway is not None
        hub = gw.gateway.hub
        async with proxied(proxy, "analytics", IDS, cookie=workspace_token(gw, "wsA")) as stream:
            await stream.next()
            assert hub.subscriptions == 1
        await wait_for(lambda: hub.subscriptions == 0)


@contextlib.contextmanager
def proxy_process(upstream: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "proxy",
            "--upstream",
            upstream,
            "--http-port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)
        assert process.stderr is not None
        process.stderr.close()


async def test_proxy_command_ends_streams_cleanly_when_upstream_dies() -> None:
    with gateway_process() as gw, proxy_process(gw.http) as (proxy, process):
        assert gw.process is not None
        cookie = workspace_token(gw, "wsA")
        async with proxied(proxy, "l5-etl", IDS, cookie=cookie) as stream:
            await stream.next()
            await gw.publish(
                gw.token("svc", publish=["logs:>"]), [[entry(CHANNELS["l5-etl"], "x")]]
            )
            assert (await stream.take(1))[0].data["message"] == "x"
            gw.process.kill()  # no drain, no `shutdown` event: the connection just breaks
            with pytest.raises(StopAsyncIteration):
                await stream.next()  # a clean end of stream, not a protocol error
        await gw.close()
        unreachable = await refusal(proxy, "l5-etl", IDS, cookies={COOKIE: cookie})
        assert unreachable.status_code == 503
        assert json.loads(unreachable.text)["error"]["code"] == "unavailable"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
