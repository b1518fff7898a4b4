"""The Logs page as a log viewer, in Chromium: history on open, samples, details, search,
follow, shortcuts, clear and download, channel edits, times, phone, dark theme, roles."""

from __future__ import annotations

import json
import re
import time

from logs_gateway.v1 import logs_pb2 as pb
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import (
    ETL,
    WORKSPACE,
    artifact,
    connect,
    messages,
    next_frame,
    publish,
    search,
    sign_in,
    wait_for_async,
)
from tests.conftest import Running, entry, running_gateway

FAAS = f"logs:faas:{WORKSPACE}:fn1"
SAMPLES = 15


async def send(run: Running, entries: list[pb.LogEntry], producer: str) -> None:
    acks = await run.publish(run.token("svc", publish=["logs:>"]), [entries], producer=producer)
    assert all(r.code == 0 for a in acks for r in a.results)


def made(channel: str, message: str, source: str, level: int = 9, **attrs: str) -> pb.LogEntry:
    e = entry(channel, message, level, **attrs)
    e.source = source
    return e


async def rows(page: Page) -> int:
    return await page.locator("#rows .row").count()


# -- history on open, samples ----------------------------------------------------------


async def test_opens_with_the_last_200_entries_then_resumes_by_cursor(
    page: Page, gw: Running
) -> None:
    await send(gw, [made(ETL, f"early {i}", "etl") for i in range(250)], "early")
    await sign_in(page, gw.http)
    async with page.expect_request("**/api/logs/stream?*tail=200*"):
        await connect(page)
    await expect(page.locator("#count")).to_have_text("200 entries")
    await search(page, '"early 50"')
    assert await messages(page) == ["early 50"]  # 50..249: the newest 200, in order
    await search(page, '"early 49"')
    assert await messages(page) == []
    # A reload resumes from its cursor: no tail asked, no entry shown twice.
    async with page.expect_request("**last_event_id=*") as request:
        await page.reload()
    assert "tail=" not in (await request.value).url
    await search(page, "")
    await expect(page.locator("#count")).to_have_text("200 entries")


async def test_samples_only_in_dev_mode_while_disconnected_for_selected_channels(
    page: Page, gw: Running
) -> None:
    await sign_in(page, gw.http)
    await expect(page.locator("#count")).to_have_text(f"0 entries · {SAMPLES} samples")
    assert await page.locator("#rows .row.sample").count() == SAMPLES
    assert await page.is_visible("#sample-note")
    times = await page.locator("#rows .row .time").all_inner_texts()
    await page.reload()  # the samples keep their times
    await expect(page.locator("#rows .row.sample")).to_have_count(SAMPLES)
    assert await page.locator("#rows .row .time").all_inner_texts() == times

    await page.goto(f"{gw.http}/?workspace={WORKSPACE}&channels=logs:faas:{WORKSPACE}:>")
    await expect(page.locator("#count")).to_have_text("0 entries · 5 samples")
    assert set(await page.locator("#rows .row .src").all_inner_texts()) == {"faas"}

    await connect(page)  # connected: the samples go, and never mix with real entries
    await expect(page.locator("#count")).to_have_text("0 entries")
    assert await page.locator("#rows .row.sample").count() == 0
    assert await page.is_hidden("#sample-note")
    await publish(gw, FAAS, "a real one")
    await page.get_by_text("a real one").wait_for()
    await page.get_by_role("button", name="Disconnect").click()  # real entries held: none
    await expect(page.locator("#status")).to_have_attribute("data-state", "disconnected")
    await next_frame(page)
    assert await page.inner_text("#count") == "1 entry"
    assert await page.is_hidden("#sample-note")


async def test_no_samples_outside_dev_mode(page: Page) -> None:
    async with running_gateway(dev=False) as run:
        await page.goto(f"{run.http}/?workspace={WORKSPACE}")
        await page.wait_for_load_state("networkidle")
        await next_frame(page)
        assert await page.inner_text("#count") == "0 entries"
        assert await rows(page) == 0


# -- details, wrap ------------------------------------------------------------------------


async def test_row_details_show_everything_with_copy_buttons(
    page: Page, context: BrowserContext, gw: Running
) -> None:
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    await sign_in(page, gw.http)
    await connect(page)
    traced = made(ETL, "step failed\n  at load()\n  at main()", "etl", 17, rows="120", step="load")
    traced.trace_id, traced.span_id = bytes(range(1, 17)), bytes(range(1, 9))
    await send(gw, [made(ETL, "before", "etl"), traced], "details")
    row = page.locator(".row", has_text="step failed")
    await row.wait_for()
    one_line = await row.locator(".text").text_content()
    assert one_line == "step failed ⏎   at load() ⏎   at main()"
    await row.click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    assert await dialog.locator("pre").inner_text() == "step failed\n  at load()\n  at main()"
    text = await dialog.inner_text()
    for wanted in (
        f"channel\n{ETL}",
        "offset\n1",
        "source\netl",
        "level\nerror (severity 17)",
        f"trace id\n{bytes(range(1, 17)).hex()}",
        f"span id\n{bytes(range(1, 9)).hex()}",
        "rows =\n120",
        "step =\nload",
    ):
        assert wanted in text, (wanted, text)
    assert " UTC" in text and "time (local)" in text
    await dialog.get_by_role("button", name="Copy message").click()
    assert await page.evaluate("navigator.clipboard.readText()") == traced.body
    await dialog.get_by_role("button", name="Copy trace id").click()
    assert await page.evaluate("navigator.clipboard.readText()") == bytes(range(1, 17)).hex()

    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    assert await page.evaluate("document.activeElement.id") == "list"  # focus back
    # Keyboard only: arrows select a row, Enter opens it.
    await page.keyboard.press("ArrowUp")
    await page.keyboard.press("ArrowUp")
    await page.keyboard.press("Enter")
    await expect(dialog).to_contain_text("Entry 0 of")
    assert await page.evaluate("document.activeElement.id") == "details-close"
    await page.keyboard.press("Escape")

    await page.get_by_role("button", name="Wrap").click()  # the whole message in the list
    await expect(row).to_contain_text("at load()\n  at main()")
    await wait_for_async(lambda: row.evaluate("(r) => r.offsetHeight > 50"))
    assert await page.get_attribute("#wrap", "aria-pressed") == "true"


# -- search, sources ----------------------------------------------------------------------


async def test_search_words_regex_negation_attributes_and_highlights(
    page: Page, gw: Running
) -> None:
    await sign_in(page, gw.http)
    await connect(page)
    await send(
        gw,
        [
            made(ETL, "extract done in 12 ms", "etl", step="extract"),
            made(ETL, "load failed: timeout", "etl", 17, step="load"),
            made(FAAS, "cold start 412 ms", "faas", region="eu-west"),
            made(FAAS, "invocation done", "faas", region="us-east"),
        ],
        "search",
    )
    await page.get_by_text("invocation done").wait_for()
    await search(page, "done")
    assert await messages(page) == ["extract done in 12 ms", "invocation done"]
    assert await page.locator("#rows mark").all_inner_texts() == ["done", "done"]
    await search(page, "done -faas")  # negation: not in the message, source or channel
    assert await messages(page) == ["extract done in 12 ms"]
    await search(page, '"done in"')  # a phrase
    assert await messages(page) == ["extract done in 12 ms"]
    await search(page, r"/\d+ ms/")
    assert await messages(page) == ["extract done in 12 ms", "cold start 412 ms"]
    assert await page.locator("#rows mark").all_inner_texts() == ["12 ms", "412 ms"]
    await search(page, "/ms$/")  # each field on its own: $ is the message's end
    assert await messages(page) == ["extract done in 12 ms", "cold start 412 ms"]
    await search(page, "region=eu")  # attributes are searched, and shown in the row
    assert await messages(page) == ["cold start 412 ms"]
    assert await page.locator("#rows mark").all_inner_texts() == ["region=eu"]
    await search(page, "logs:faas")  # the channel
    assert len(await messages(page)) == 2
    await search(page, "/(unclosed/")
    assert await page.get_attribute("#search", "aria-invalid") == "true"
    assert "Search: /(unclosed/" in await page.inner_text("#search-error")
    await search(page, "")
    assert await page.get_attribute("#search", "aria-invalid") == "false"

    await page.select_option("#source", "faas")  # the sources seen so far
    await next_frame(page)
    assert await messages(page) == ["cold start 412 ms", "invocation done"]
    await page.select_option("#source", "")
    await next_frame(page)
    hues = await page.evaluate(
        "[...document.querySelectorAll('#rows .row')].map((r) => "
        "[r.querySelector('.src').textContent, r.style.getPropertyValue('--h')])"
    )
    by_source: dict[str, set[str]] = {}
    for source, hue in hues:
        by_source.setdefault(source, set()).add(hue)
    assert all(len(h) == 1 for h in by_source.values())  # one colour per source ...
    assert by_source["etl"] != by_source["faas"]  # ... and different ones
    await page.reload()
    await page.get_by_text("invocation done").wait_for()
    again = await page.evaluate(
        "document.querySelector('#rows .row .src').parentElement.style.getPropertyValue('--h')"
    )
    assert {again} == by_source["etl"]  # the same after a reload


# -- follow, shortcuts ---------------------------------------------------------------------


async def test_scrolling_up_pauses_follow_and_counts_what_arrives(page: Page, gw: Running) -> None:
    await sign_in(page, gw.http)
    await connect(page)
    await send(gw, [made(ETL, f"line {i}", "etl") for i in range(200)], "many")
    await expect(page.locator("#count")).to_have_text("200 entries")
    await page.get_by_text("line 199").wait_for()
    jump = page.locator("#jump")
    await expect(jump).to_be_hidden()
    await page.mouse.move(640, 400)
    await page.mouse.wheel(0, -600)
    await expect(jump).to_have_text("Jump to latest")
    # The wheel scrolls smoothly: wait until it has gone all the way up.
    above = "(l => l.scrollHeight - l.clientHeight - l.scrollTop)(document.getElementById('list'))"
    await wait_for_async(lambda: page.evaluate(f"{above} >= 599"))
    top = await page.evaluate("document.getElementById('list').scrollTop")
    await send(gw, [made(ETL, f"more {i}", "etl") for i in range(5)], "more")
    await expect(jump).to_have_text("5 new, jump to latest")
    assert await page.evaluate("document.getElementById('list').scrollTop") == top  # stays
    await jump.click()
    await page.get_by_text("more 4").wait_for()
    await expect(jump).to_be_hidden()
    await send(gw, [made(ETL, "followed again", "etl")], "again")
    await page.get_by_text("followed again").wait_for()  # in sight: following

    # Shortcuts: Space pauses and resumes, `/` searches, End goes to the latest.
    await page.locator("#list").focus()
    await page.keyboard.press("Space")
    await expect(page.locator("#pause")).to_have_attribute("aria-pressed", "true")
    await expect(page.locator("#count")).to_contain_text("paused")
    await send(gw, [made(ETL, "while paused", "etl")], "paused")
    await expect(jump).to_have_text("1 new, jump to latest")
    await page.keyboard.press("Space")
    await expect(page.locator("#pause")).to_have_attribute("aria-pressed", "false")
    await page.get_by_text("while paused").wait_for()
    await page.keyboard.press("/")
    assert await page.evaluate("document.activeElement.id") == "search"
    await page.keyboard.type("line 1")
    await page.keyboard.press("Escape")  # out of the search box, to the list
    assert await page.evaluate("document.activeElement.id") == "list"
    await page.mouse.wheel(0, -400)
    await expect(jump).to_be_visible()
    await page.keyboard.press("End")
    await expect(jump).to_be_hidden()


# -- clear, download, channels ----------------------------------------------------------


async def test_clear_and_download_what_is_shown(page: Page, gw: Running) -> None:
    await sign_in(page, gw.http)
    await connect(page)
    await send(
        gw,
        [made(ETL, "keep a", "etl"), made(ETL, "skip b", "etl"), made(ETL, "keep c", "etl")],
        "d",
    )
    await page.get_by_text("keep c").wait_for()
    await search(page, "keep")
    async with page.expect_download() as jsonl:
        await page.get_by_role("button", name="Download JSON lines").click()
    lines = (await (await jsonl.value).path()).read_text().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["keep a", "keep c"]
    assert json.loads(lines[0])["channel"] == ETL and "offset" in json.loads(lines[0])
    async with page.expect_download() as text:
        await page.get_by_role("button", name="Download text").click()
    plain = (await (await text.value).path()).read_text().splitlines()
    assert len(plain) == 2 and plain[1].endswith(f"INFO  etl {ETL} keep c")

    await page.get_by_role("button", name="Clear").click()
    await expect(page.locator("#count")).to_have_text("0 entries")
    await page.reload()  # what was cleared stays cleared
    await page.get_by_role("button", name="Disconnect").click()
    await search(page, "")
    await expect(page.locator("#count")).to_have_text(f"0 entries · {SAMPLES} samples")
    await connect(page)
    await send(gw, [made(ETL, "after clear", "etl")], "after")
    await page.get_by_text("after clear").wait_for()
    await expect(page.locator("#count")).to_have_text("1 entry")


async def test_editing_channels_drops_the_others_and_keeps_the_rest_across_reloads(
    page: Page, gw: Running
) -> None:
    await sign_in(page, gw.http)
    await connect(page)
    await send(gw, [made(ETL, "etl 1", "etl"), made(FAAS, "faas 1", "faas")], "both")
    await page.get_by_text("faas 1").wait_for()
    await page.fill("#channels", f"logs:etl:{WORKSPACE}:>")
    await page.press("#channels", "Enter")
    await expect(page.locator("#count")).to_have_text("1 entry")
    assert await messages(page) == ["etl 1"]
    await send(gw, [made(ETL, "etl 2", "etl"), made(FAAS, "faas 2", "faas")], "after")
    await page.get_by_text("etl 2").wait_for()
    assert f"channels=logs%3Aetl%3A{WORKSPACE}%3A%3E" in page.url  # the URL holds the edit
    await page.reload()
    await page.get_by_text("etl 2").wait_for()
    assert await page.input_value("#channels") == f"logs:etl:{WORKSPACE}:>"
    await page.wait_for_timeout(300)  # the resume has sent what it sends
    assert await messages(page) == ["etl 1", "etl 2"]


# -- times ---------------------------------------------------------------------------------


async def test_times_show_the_date_when_not_today_and_toggle_utc_with_the_zone(
    browser: Browser, gw: Running
) -> None:
    context = await browser.new_context(timezone_id="Asia/Kolkata")  # UTC+05:30, no DST
    try:
        page = await context.new_page()
        await sign_in(page, gw.http)
        await connect(page)
        old = made(ETL, "from 2024", "etl")
        old.time_unix_nano = 1_717_243_384_123_000_000  # 2024-06-01T12:03:04.123Z
        now = made(ETL, "from now", "etl")
        now.time_unix_nano = time.time_ns()
        await send(gw, [old, now], "times")
        await page.get_by_text("from now").wait_for()
        button = page.locator("#utc")
        # (ICU may name the zone by its older name.)
        await expect(button).to_have_text(
            re.compile(r"Times: Asia/(Kolkata|Calcutta) \(UTC\+05:30\)")
        )
        old_row = page.locator(".row", has_text="from 2024").locator(".time")
        assert await old_row.inner_text() == "2024-06-01 17:33:04.123"
        now_text = await page.locator(".row", has_text="from now").locator(".time").inner_text()
        assert len(now_text) == 12  # today: the time alone
        await button.click()
        await expect(button).to_have_text("Times: UTC")
        await expect(old_row).to_have_text("2024-06-01 12:03:04.123")
        await page.reload()  # the choice is kept
        await expect(page.locator("#utc")).to_have_text("Times: UTC")
    finally:
        await context.close()


# -- phone, dark theme, roles, screenshots -----------------------------------------------


async def fill_for_screenshot(page: Page, gw: Running) -> None:
    long = "batch 7 committed: " + ", ".join(f"table_{i} 1,2{i}0 rows" for i in range(12))
    await send(
        gw,
        [
            made(ETL, "extract: read 12,480 rows from orders in 1.8 s", "etl", step="extract"),
            made(ETL, "transform: skipped 37 rows with an empty customer_id", "etl", 13),
            made(FAAS, "cold start in 412 ms (python3.12, 256 MB)", "faas", region="eu-west"),
            made(FAAS, "invocation 7f3b: TimeoutError after 30,000 ms\n  at handler()", "faas", 17),
            made(ETL, long, "etl", step="load"),
            made(f"logs:analytics:{WORKSPACE}", "query q-5521 finished in 14.2 s", "analytics"),
        ],
        "shots",
    )
    await page.get_by_text("query q-5521 finished").wait_for()


async def test_phone_width_gives_the_message_the_row_and_folds_the_toolbar(
    browser: Browser, gw: Running
) -> None:
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = await context.new_page()
        await sign_in(page, gw.http)
        await connect(page)
        await fill_for_screenshot(page, gw)
        width = await page.locator("#rows .row .msg").first.evaluate("(m) => m.offsetWidth")
        assert width >= 0.65 * 390, f"the message is {width} px of 390"
        assert await page.is_hidden("#search")  # folded away ...
        await page.screenshot(path=artifact("logs-page-phone.png"))
        toggle = page.get_by_role("button", name="Filters")
        await toggle.click()  # ... until asked for
        await expect(page.locator("#search")).to_be_visible()
        assert await toggle.get_attribute("aria-expanded") == "true"
        await page.locator(".row", has_text="TimeoutError").click()
        await page.screenshot(path=artifact("logs-page-phone-details.png"))
        box = await page.locator("#details").bounding_box()
        assert box is not None and box["width"] >= 380  # the details take the screen
    finally:
        await context.close()


async def background(page: Page) -> str:
    return str(
        await page.evaluate("getComputedStyle(document.getElementById('list')).backgroundColor")
    )


async def test_dark_theme_follows_the_system_and_the_toggle(browser: Browser, gw: Running) -> None:
    context = await browser.new_context(
        viewport={"width": 1280, "height": 720}, color_scheme="dark"
    )
    try:
        page = await context.new_page()
        await sign_in(page, gw.http)
        assert await background(page) == "rgb(22, 27, 34)"  # the system says dark
        await connect(page)
        await fill_for_screenshot(page, gw)
        await page.screenshot(path=artifact("logs-page-dark.png"))
        theme = page.locator("#theme")
        await theme.click()
        await expect(theme).to_have_text("Theme: dark")
        await theme.click()
        await expect(theme).to_have_text("Theme: light")
        assert await background(page) == "rgb(255, 255, 255)"  # light, although the system is dark
        await page.reload()
        assert await background(page) == "rgb(255, 255, 255)"  # kept
        await page.screenshot(path=artifact("logs-page-light.png"))
    finally:
        await context.close()


async def test_roles_names_and_focus_order(page: Page, gw: Running) -> None:
    await sign_in(page, gw.http)
    await connect(page)
    await send(gw, [made(ETL, f"r {i}", "etl") for i in range(3)], "roles")
    await page.get_by_text("r 2").wait_for()
    await expect(page.get_by_role("status").first).to_have_text("Connected")
    listbox = page.get_by_role("listbox", name="Log entries (arrow keys select, Enter opens)")
    await expect(listbox.get_by_role("option")).to_have_count(3)
    assert await listbox.get_by_role("option").nth(2).get_attribute("aria-setsize") == "3"
    await page.screenshot(path=artifact("logs-page-connected.png"))
    # Tab order: the channels, the connection, the tools, then the list.
    await page.focus("#channels")
    order = []
    for _ in range(40):  # (the time field takes a Tab per part)
        await page.keyboard.press("Tab")
        order.append(await page.evaluate("document.activeElement.id"))
        if order[-1] == "list":
            break
    # The channel picker, then Disconnect: Connect is gone while connected.
    assert order[:3] == ["picker", "disconnect", "search"]
    assert order.index("search") < order.index("pause") < order.index("list")
    await page.keyboard.press("ArrowDown")
    selected = listbox.locator("[aria-selected=true]")
    await expect(selected).to_have_count(1)
    assert await listbox.get_attribute("aria-activedescendant") == await selected.get_attribute(
        "id"
    )
