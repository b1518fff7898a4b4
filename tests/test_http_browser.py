"""The HTTP pieces browsers need: CORS, dev sign-in and the Logs page with its files."""

from __future__ import annotations

from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest

from gateway.api.http.auth import COOKIE
from gateway.api.http.page import WEB_ROOT, Page, static_files
from gateway.app import config as cfg
from gateway.core.channels import parse_pattern
from gateway.core.tokens import Verifier
from tests.conftest import Running, make_verifier, running_gateway

PAGE_ORIGIN = "http://127.0.0.1:5173"
OTHER_ORIGIN = "http://127.0.0.1:6666"
STREAM = "/api/logs/stream"


def verifier() -> Verifier:
    return make_verifier()


# -- CORS -----------------------------------------------------------------------------


async def test_preflight_only_for_listed_origins() -> None:
    async with running_gateway(cors_origins=PAGE_ORIGIN) as gw, httpx.AsyncClient() as client:
        ask = {
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        }
        ok = await client.options(gw.http + STREAM, headers={"Origin": PAGE_ORIGIN, **ask})
        assert ok.status_code == 204
        assert ok.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
        assert ok.headers["Access-Control-Allow-Credentials"] == "true"
        assert "Authorization" in ok.headers["Access-Control-Allow-Headers"]
        anywhere = await client.options(
            gw.http + "/nowhere", headers={"Origin": PAGE_ORIGIN, **ask}
        )
        assert anywhere.status_code == 204  # as a middleware answered it: on any path
        refused = await client.options(gw.http + STREAM, headers={"Origin": OTHER_ORIGIN, **ask})
        assert refused.status_code == 403
        assert "Access-Control-Allow-Origin" not in refused.headers
        assert OTHER_ORIGIN in refused.json()["error"]["message"]


async def test_stream_and_errors_carry_cors_headers_for_listed_origins() -> None:
    async with running_gateway(cors_origins=f"{PAGE_ORIGIN}, https://logs.example") as gw:
        token = gw.token(subscribe=["logs:>"])
        params = {"channels": "logs:etl:ws:wf"}
        async with (
            httpx.AsyncClient(timeout=5, cookies={COOKIE: token}) as client,
            client.stream(
                "GET", gw.http + STREAM, params=params, headers={"Origin": PAGE_ORIGIN}
            ) as stream,
        ):
            assert stream.status_code == 200
            assert stream.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
            assert stream.headers["Access-Control-Allow-Credentials"] == "true"
            assert stream.headers["Vary"] == "Origin"
        async with httpx.AsyncClient(timeout=5) as client:
            error = await client.get(
                gw.http + STREAM, params=params, headers={"Origin": PAGE_ORIGIN}
            )
            assert error.status_code == 401
            assert error.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
            other = await client.get(
                gw.http + STREAM, params=params, headers={"Origin": OTHER_ORIGIN}
            )
            assert "Access-Control-Allow-Origin" not in other.headers
            assert "Access-Control-Allow-Credentials" not in other.headers


async def test_no_cors_headers_without_the_setting(gw: Running) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(gw.http + "/health", headers={"Origin": PAGE_ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("origins", ["*", "http://127.0.0.1:5173, *", "127.0.0.1:5173"])
def test_wildcard_or_bad_origins_are_refused_at_start(origins: str) -> None:
    with pytest.raises(cfg.ConfigError, match="LOGS_GATEWAY_CORS_ORIGINS"):
        cfg.load(env={"LOGS_GATEWAY_CORS_ORIGINS": origins})


# -- dev sign-in ----------------------------------------------------------------------


async def test_dev_login_sets_a_workspace_cookie_and_redirects_home(gw: Running) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            gw.http + "/dev/login", params={"user": "alice", "workspace": "ws1"}
        )
    assert response.status_code == 303
    assert response.headers["Location"] == "/?workspace=ws1"
    morsel = SimpleCookie(response.headers["Set-Cookie"])[COOKIE]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Lax"
    assert morsel["path"] == "/"
    principal = verifier().verify(morsel.value)
    assert principal.subject == "alice"
    assert [p.text for p in principal.subscribe] == ["logs:*:ws1", "logs:*:ws1:>"]
    assert principal.publish == ()
    assert not principal.admin
    principal.check_subscribe(parse_pattern("logs:analytics:ws1"))
    principal.check_subscribe(parse_pattern("logs:etl:ws1:wf9"))


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"workspace": "ws1"}, "'user'"),
        ({"user": "alice"}, "'workspace'"),
        ({"user": "alice", "workspace": "ws1:>"}, "'workspace'"),
        ({"user": "a b", "workspace": "ws1"}, "'user'"),
    ],
)
async def test_dev_login_refuses_bad_input(gw: Running, query: dict[str, str], named: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(gw.http + "/dev/login", params=query)
    assert response.status_code == 400
    assert named in response.json()["error"]["message"]
    assert "Set-Cookie" not in response.headers


async def test_dev_login_does_not_exist_outside_dev_mode() -> None:
    async with running_gateway(dev=False) as gw, httpx.AsyncClient() as client:
        response = await client.get(
            gw.http + "/dev/login", params={"user": "alice", "workspace": "ws1"}
        )
    assert response.status_code == 404
    assert "Set-Cookie" not in response.headers


# -- the page -------------------------------------------------------------------------


async def test_page_and_its_files_are_served(gw: Running) -> None:
    async with httpx.AsyncClient() as client:
        page = await client.get(gw.http + "/")
        assert page.status_code == 200
        assert page.headers["Content-Type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        assert "Connect Live Logs" in page.text
        for name in ("logs-page.js", "lib/logs-client.js", "lib/logs-react.js"):
            script = await client.get(f"{gw.http}/static/{name}")
            assert script.status_code == 200, name
            assert script.headers["Content-Type"].startswith("text/javascript")
        for name in ("../app/server.py", "lib/../../app/config.py", "nope.js"):
            assert (await client.get(f"{gw.http}/static/{name}")).status_code == 404


def test_the_page_finds_the_js_client_through_its_link() -> None:
    files = static_files(WEB_ROOT)
    assert files["lib/logs-client.js"].read_text().startswith("/**")
    assert {"index.html", "logs-page.js", "log-view.js", "samples.js", "logs-page.css"} <= set(
        files
    )


def test_a_missing_js_client_is_reported_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    Page(tmp_path)
    assert "cannot load its JS client" in caplog.text
