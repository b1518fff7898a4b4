"""Browser tests: Debian's Chromium driven by Playwright, against real gateways.

scripts/test installs Chromium (`apt-get install chromium`) and the npm packages of the
consumer app in tests/web_package; Playwright's own browser downloads are never used.
Launching it, signing in and connecting come from harness/page.py, which bench/page.py
uses too; the tests import them from here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from harness.page import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ETL,
    WORKSPACE,
    connect,
    sign_in,
    state,
    wait_state,
)
from tests.conftest import Running, entry

# What the tests import from here (harness.page's, and this file's own below).
__all__ = [
    "ETL",
    "WORKSPACE",
    "artifact",
    "connect",
    "messages",
    "next_frame",
    "publish",
    "record_states",
    "search",
    "sign_in",
    "state",
    "wait_for_async",
    "wait_state",
]

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="session")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: run scripts/test, or apt-get install -y chromium"
        )
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    context.set_default_timeout(10_000)
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.errors = errors  # type: ignore[attr-defined]
    return page


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


# -- the Logs page --------------------------------------------------------------------


async def messages(page: Page) -> list[str]:
    """The messages the list shows (the list renders only the rows in sight: search first)."""
    return await page.locator("#rows .row .msg .text").all_inner_texts()


async def search(page: Page, text: str) -> None:
    """Type into the search box and wait for the list to render (once a frame)."""
    await page.fill("#search", text)
    await next_frame(page)


async def next_frame(page: Page) -> None:
    await page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


async def publish(run: Running, channel: str, *texts: str, producer: str = "") -> None:
    token = run.token("svc", publish=["logs:>"])
    acks = await run.publish(
        token, [[entry(channel, t) for t in texts]], producer=producer or texts[0]
    )
    assert all(r.code == 0 for a in acks for r in a.results)


async def wait_for_async(check: Callable[[], Awaitable[object]], timeout: float = 5.0) -> None:
    """Poll an async check (e.g. a page.evaluate) until it is truthy."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def record_states(page: Page) -> None:
    """From now on, every status the page's client reports lands in `window.states`."""
    # (The trailing `true`: Playwright would call a function the expression returns.)
    await page.evaluate(
        "window.states = []; logsPage.client.onStatus((s) => window.states.push(s.state)); true"
    )
