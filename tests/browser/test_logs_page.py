"""The Logs page at `/`, in Chromium: sign in, connect, live entries, outages and reloads."""

from __future__ import annotations

import asyncio
import time

from playwright.async_api import BrowserContext, Page, expect

from gateway.api.http.auth import COOKIE
from harness.page import steady_stream
from tests.browser.conftest import (
    ETL,
    WORKSPACE,
    connect,
    messages,
    publish,
    record_states,
    search,
    sign_in,
    state,
    wait_for_async,
    wait_state,
)
from tests.conftest import entry, free_port, gateway_process, running_gateway, wait_for

SAMPLES = 15


async def count(page: Page) -> str:
    return await page.inner_text("#count")


async def test_sign_in_connect_live_entry_then_disconnect(page: Page) -> None:
    async with running_gateway() as gw:
        assert gw.gateway is not None
        await sign_in(page, gw.http)
        await expect(page.locator("#count")).to_have_text(f"0 entries · {SAMPLES} samples")
        assert await state(page) == "disconnected"
        await connect(page)
        await publish(gw, ETL, "checkout finished in 412 ms")
        started = time.monotonic()
        await page.get_by_text("checkout finished in 412 ms").wait_for(timeout=1000)
        assert time.monotonic() - started < 1.0
        for level, text in ((13, "slow query: 2.4 s"), (17, "load step failed"), (5, "rows: 1024")):
            token = gw.token("svc", publish=["logs:>"])
            await gw.publish(token, [[entry(ETL, text, level)]], producer=text)
        traced = entry(ETL, "traced step")
        traced.trace_id, traced.span_id = bytes(range(1, 17)), bytes(range(1, 9))
        await gw.publish(gw.token("svc", publish=["logs:>"]), [[traced]], producer="traced")
        await page.get_by_text("traced step").wait_for()
        assert await count(page) == "5 entries"  # the samples went when it connected

        await page.get_by_role("button", name="Disconnect").click()
        await wait_state(page, "disconnected")
        await wait_for(lambda: gw.gateway.hub.subscriptions == 0)
        await publish(gw, ETL, "published after disconnect")
        await page.wait_for_timeout(1000)
        assert "published after disconnect" not in await messages(page)
        assert await count(page) == "5 entries"  # no samples beside real entries
    assert page.errors == []  # type: ignore[attr-defined]


async def test_filters_search_and_pause(page: Page) -> None:
    async with running_gateway() as gw:
        await sign_in(page, gw.http)
        await connect(page)
        await publish(gw, ETL, "alpha one", "beta two", "alpha three")
        await page.get_by_text("alpha three").wait_for()
        await search(page, "alpha")
        await expect(page.locator("#rows .row")).to_have_count(2)
        assert await messages(page) == ["alpha one", "alpha three"]
        await search(page, "")
        for text in ("gamma failed", "delta failed"):
            token = gw.token("svc", publish=["logs:>"])
            await gw.publish(token, [[entry(ETL, text, 17)]], producer=text)
        await page.get_by_text("delta failed").wait_for()
        await page.select_option("#level", "17")  # error and up
        await expect(page.locator("#rows .row")).to_have_count(2)
        assert {await r.get_attribute("data-level") for r in await page.locator(".row").all()} == {
            "error"
        }
        await page.get_by_role("button", name="Pause").click()
        # The count line is redrawn on the next animation frame: wait for it.
        await expect(page.locator("#count")).to_contain_text("paused")


async def test_restart_shows_reconnecting_then_what_was_missed_once(
    page: Page, context: BrowserContext
) -> None:
    ports = (free_port(), free_port())
    with gateway_process("--dev", ports=ports) as first:
        await sign_in(page, first.http)
        await connect(page)
        await publish(first, ETL, "before the restart")
        await page.get_by_text("before the restart").wait_for(timeout=1000)
        await first.close()
    # The first gateway has drained (its clients were told to reconnect) and exited.
    await wait_state(page, "reconnecting")
    # Keep the page offline while the new gateway starts and takes entries, so that they
    # are certainly published while the page is away: it must fetch them from history.
    await context.set_offline(True)
    with gateway_process("--dev", ports=ports) as second:
        await publish(second, ETL, "missed 1", "missed 2", "missed 3")
        assert await state(page) == "reconnecting"
        await record_states(page)
        await context.set_offline(False)
        await wait_state(page, "connected")
        await page.get_by_text("missed 3").wait_for(timeout=2000)
        await publish(second, ETL, "after the restart", producer="after")
        await page.get_by_text("after the restart").wait_for(timeout=1000)
        await search(page, "the restart")
        assert await messages(page) == ["before the restart", "after the restart"]
        await search(page, "missed")
        assert await messages(page) == ["missed 1", "missed 2", "missed 3"]
        assert "restarted" in await page.inner_text("#notice")
        assert (await page.evaluate("window.states"))[-1] == "connected"
        await second.close()


async def test_user_without_rights_sees_a_clear_error(page: Page) -> None:
    async with running_gateway() as gw:
        await page.goto(f"{gw.http}/?workspace={WORKSPACE}")  # not signed in at all
        await record_states(page)
        await page.get_by_role("button", name="Connect Live Logs").click()
        await wait_state(page, "error")
        problem = await page.inner_text("#problem")
        assert "missing bearer token" in problem
        # How a real deployment signs the browser in, and the dev-mode shortcut.
        assert "backend sets the logs_gateway_token cookie" in problem
        assert "Signing in in production" in problem
        assert "In dev mode: /dev/login?user=NAME&workspace=ID" in problem

        # Signed in for another workspace. The tab asked to be connected before, so the
        # page connects by itself after loading.
        await sign_in(page, gw.http, user="bob", workspace="ws2")
        await page.goto(f"{gw.http}/?workspace={WORKSPACE}")
        await wait_state(page, "error")
        problem = await page.inner_text("#problem")
        assert f"token 'bob' may not subscribe to 'logs:*:{WORKSPACE}" in problem
        assert "HTTP 403" in problem
        await record_states(page)
        await page.wait_for_timeout(2500)  # no retry loop, no spinner: it stays an error
        assert await page.evaluate("window.states") == []
        await page.get_by_role("button", name="Connect Live Logs").click()
        # The state was "error" before the click too: wait for the new attempt's end.
        await page.wait_for_function("() => window.states.length >= 2", timeout=10_000)
        assert await page.evaluate("window.states") == ["connecting", "error"]
        assert await page.get_by_role("button", name="Connect Live Logs").is_enabled()


async def test_expired_sign_in_ends_the_stream_then_a_new_one_connects(
    page: Page, context: BrowserContext
) -> None:
    async with running_gateway(jwt_leeway=0.0) as gw:
        rights = [f"logs:*:{WORKSPACE}", f"logs:*:{WORKSPACE}:>"]
        # Long enough for a loaded CI machine to connect before `exp`.
        token = gw.token("alice", subscribe=rights, ttl=8)
        await context.add_cookies([{"name": COOKIE, "value": token, "url": gw.http}])
        await page.goto(f"{gw.http}/?workspace={WORKSPACE}")
        await record_states(page)
        await connect(page)
        # At `exp` the gateway ends the stream (`event: error`); the retry is refused.
        await wait_state(page, "error", timeout=20_000)
        assert "token expired" in await page.inner_text("#problem")
        assert await page.evaluate("window.states") == [
            "connecting",
            "connected",
            "reconnecting",
            "error",
        ]
        await sign_in(page, gw.http)  # a fresh cookie; the tab still wants its stream
        await wait_state(page, "connected")
        await publish(gw, ETL, "after a fresh sign-in")
        await page.get_by_text("after a fresh sign-in").wait_for(timeout=5000)


async def test_reload_restores_recent_entries_without_duplicates(page: Page) -> None:
    async with running_gateway() as gw:
        await sign_in(page, gw.http)
        await connect(page)
        stored = "JSON.parse(sessionStorage['logs-gateway'] || '{}').cursor"
        await wait_for_async(lambda: page.evaluate(stored))
        early_cursor = await page.evaluate(stored)
        await publish(gw, ETL, "kept 1", "kept 2", "kept 3")
        await page.get_by_text("kept 3").wait_for()

        # Disconnected, then reloaded: the entries come from sessionStorage alone.
        await page.get_by_role("button", name="Disconnect").click()
        await page.reload()
        await search(page, "kept")
        assert await messages(page) == ["kept 1", "kept 2", "kept 3"]
        assert await state(page) == "disconnected"

        # Connected, then reloaded with the stored cursor set back before "kept 1", so the
        # resume replays what was restored: each entry must still show once.
        await connect(page)
        await publish(gw, ETL, "kept 4")
        await page.get_by_text("kept 4").wait_for()
        await page.add_init_script(
            "const s = JSON.parse(sessionStorage['logs-gateway']);"
            f"s.cursor = {early_cursor!r}; sessionStorage['logs-gateway'] = JSON.stringify(s);"
        )
        async with page.expect_request(f"**last_event_id={early_cursor}**"):
            await page.reload()
        await wait_state(page, "connected")  # reconnects by itself after a reload
        await publish(gw, ETL, "kept 5")
        await search(page, "kept")
        await page.get_by_text("kept 5").wait_for()
        await page.wait_for_timeout(300)
        assert await messages(page) == [f"kept {i}" for i in range(1, 6)]


# Entries of one channel (offset, time, message), as the client hands them to the list.
ADD_ENTRIES = """(entries) => entries.map(([offset, time, message]) => ({
  channel: 'logs:etl:ws1:wf1', offset, time, level: 'info', severity: 9, message,
  source: 'etl', attributes: {},
}))"""


async def test_an_entry_is_known_again_by_channel_offset_and_time(page: Page) -> None:
    # The same entry through a second pattern or from a history page shows once; the same
    # offset with another time (a gateway that lost its history counts offsets again) is
    # another entry.
    async with running_gateway() as gw:
        await sign_in(page, gw.http)
        first = [1, "2026-12-07T10:00:00Z", "first"]
        again = [1, "2026-12-07T10:00:00Z", "first again"]
        restarted = [1, "2026-12-07T11:00:00Z", "after a restart"]
        await page.evaluate(
            f"""([first, again, restarted]) => {{
              const entries = {ADD_ENTRIES};
              logsPage.view.add(entries([first, again]));
              logsPage.view.prepend(entries([again]));
              logsPage.view.add(entries([restarted]));
            }}""",
            [first, again, restarted],
        )
        await expect(page.locator("#count")).to_have_text("2 entries")
        assert await messages(page) == ["first", "after a restart"]


FRAME_WATCH = """window.longestFrame = 0;
let last = performance.now();
const tick = (now) => {
  window.longestFrame = Math.max(window.longestFrame, now - last);
  last = now;
  requestAnimationFrame(tick);
};
requestAnimationFrame(tick);
true"""


async def longest_frame(page: Page) -> float:
    """The longest gap between two frames since the last call, in ms."""
    return float(await page.evaluate("[window.longestFrame, (window.longestFrame = 0)][0]"))


async def test_smooth_with_ten_thousand_entries(page: Page) -> None:
    # History and the send buffer hold the whole burst, so it is the page that is measured.
    async with running_gateway(history_entries=20_000, send_buffer_bytes=32 << 20) as gw:
        await sign_in(page, gw.http)
        await connect(page)
        await page.evaluate(FRAME_WATCH)
        token = gw.token("svc", publish=["logs:>"])
        # A burst of 10,500 entries: the list holds them all (up to 100,000).
        batches = [[entry(ETL, f"bulk {b}-{i}") for i in range(500)] for b in range(21)]
        started = time.monotonic()
        await gw.publish(token, batches, producer="bulk")
        await expect(page.locator("#count")).to_have_text("10,500 entries", timeout=20_000)
        elapsed = time.monotonic() - started
        burst_frame = await longest_frame(page)
        assert await page.locator("#rows .row").count() < 80, "only rows in sight are in the DOM"
        assert "bulk 20-499" in await messages(page)  # followed to the newest
        assert elapsed < 10, f"10,500 entries took {elapsed:.1f} s to show"
        # Chromium itself dispatches a burst's events in long tasks; a page that rendered
        # every entry would freeze for many seconds, not a fraction of one.
        assert burst_frame < 2000, f"the burst froze the page for {burst_frame:.0f} ms"

        # Then, holding 10,000 entries: live entries, searches and scrolling stay smooth.
        async def use_the_page() -> None:
            for text in ("steady", "bulk 3", "", "bulk 7-499"):
                await page.fill("#search", text)
                await asyncio.sleep(0.25)
            await page.fill("#search", "")
            await page.mouse.move(640, 400)
            for _ in range(8):
                await page.mouse.wheel(0, -1500)
                await asyncio.sleep(0.1)

        await asyncio.gather(steady_stream(gw, token, 2.0), use_the_page())
        steady_frame = await longest_frame(page)
        await expect(page.locator("#count")).to_have_text("10,900 entries")
        assert steady_frame < 250, f"a frame took {steady_frame:.0f} ms with 10,000 entries"
        await search(page, '"bulk 7-499"')
        await expect(page.locator("#rows .row")).to_have_count(1)
