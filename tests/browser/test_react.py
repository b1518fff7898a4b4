"""The packed package in Chromium: a Vite app (tests/web_package/app) importing
`logs-gateway-client` by name, two components on two channels sharing one provider, which
starts with `tail` history.

The app is served from its own origin, so the stream is cross-origin: it also proves CORS
with the sign-in cookie.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Page, expect

from tests.browser.conftest import WORKSPACE, publish, sign_in
from tests.conftest import running_gateway, wait_for
from tests.web_package.consumer import installed, run, tool

ETL = f"logs:etl:{WORKSPACE}:wf1"
FAAS = f"logs:faas:{WORKSPACE}:fn1"
# Counts the page's EventSources that are not closed.
COUNT_SOURCES = """
const Original = window.EventSource;
const made = new Set();
window.EventSource = class extends Original {
  constructor(...args) { super(...args); made.add(this); }
};
window.liveSources = () => [...made].filter((s) => s.readyState !== Original.CLOSED).length;
"""


@pytest.fixture(scope="module")
def react_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app, built by Vite in development mode (so StrictMode runs effects twice)."""
    installed()
    out = tmp_path_factory.mktemp("react-page")
    build = [tool("vite"), "build", "app", "--outDir", str(out), "--emptyOutDir", "--base", "./"]
    run([*build, "--logLevel", "warn"], env=os.environ | {"NODE_ENV": "development"})
    return out


@contextlib.asynccontextmanager
async def static_site(folder: Path) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_static("/", folder)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def items(page: Page, panel: str) -> list[str]:
    return await page.locator(f"#{panel} li").all_inner_texts()


async def test_two_components_one_provider_one_connection(page: Page, react_page: Path) -> None:
    async with static_site(react_page) as origin, running_gateway(cors_origins=origin) as gw:
        assert gw.gateway is not None
        hub = gw.gateway.hub
        await sign_in(page, gw.http)  # the cookie, for the gateway's host
        await page.add_init_script(COUNT_SOURCES)
        await publish(gw, ETL, "etl earlier", "etl before")  # the provider's tail=1 shows one
        query = f"gateway={gw.http}&channels={ETL},{FAAS}&tail=1"
        await page.goto(f"{origin}/index.html?{query}")
        for panel in ("#a", "#b"):
            await expect(page.locator(panel)).to_have_attribute("data-state", "connected")
        await expect(page.locator("#b")).to_have_attribute("data-channels", f"{ETL},{FAAS}")

        await publish(gw, ETL, "etl one")
        await publish(gw, FAAS, "faas one")
        await expect(page.locator("#a li")).to_have_text(["etl before", "etl one"])
        await expect(page.locator("#b li")).to_have_text(["faas one"])
        assert hub.subscriptions == 1
        assert await page.evaluate("liveSources()") == 1

        await page.click("#unmount-a")
        await expect(page.locator("#a")).to_have_count(0)
        # The provider's one connection reconnects with the channel still wanted.
        await expect(page.locator("#b")).to_have_attribute("data-channels", FAAS)
        await publish(gw, ETL, "etl two")
        await publish(gw, FAAS, "faas two")
        await expect(page.locator("#b li")).to_have_text(["faas one", "faas two"])
        await wait_for(lambda: hub.subscriptions == 1)
        assert await page.evaluate("liveSources()") == 1
        assert page.errors == []  # type: ignore[attr-defined]
