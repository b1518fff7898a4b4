"""`python -m bench page [--repeat N] [--against TREE]`: the Logs page following a live stream
(issue 25's "a frame under 50 ms while following at 100,000 loaded entries"), in Debian's
Chromium.

Each run opens a fresh page on a fresh in-process gateway, loads 1,000 entries, then follows
200 live entries a second for 3 s while every gap between two animation frames is
recorded; then the same with 100,000 entries loaded. The figures:

- frame gaps (p50, p95, longest), the main thread's long tasks (over 50 ms), rows written;
- from a Chromium trace of the 3 s: the longest main-thread task in wall time and in the
  thread's own CPU time (a task that took 150 ms of wall time but 5 ms of CPU waited for a
  core: the machine's load, not the page's work), and the garbage collector's pauses on
  the main thread (the longest, wall and CPU, and their sum);
- the longest garbage collection pause while the entries were loading (V8's major
  collections then walk what is held so far: the pause a following page meets when one
  falls in its seconds), and at the end the JS heap per entry held.

The ratio of the 100,000 run's p95 to the 1,000 run's is what the entries held cost a
frame. With `--against TREE` each run is paired with one of another checkout's page (its
gateway/web served in place of this tree's, e.g. `git worktree add /tmp/base main`),
alternating, so both are measured under the same load. Chromium and the gateway run on
every core (not pinned to the load cores as the other benches' load is: the renderer, its
compositor and the gateway on one core measured each other); on a busy machine the
absolute figures follow the load, the ratio much less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, Route, async_playwright, expect

from harness.gateway import Running, entry, running_gateway
from harness.page import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ETL,
    FOLLOW_WATCH,
    connect,
    heap_used,
    sign_in,
    steady_stream,
)

SIZES = (1_000, 100_000)
SECONDS = 3.0
LONG_TASKS = """window.longTasks = [];
new PerformanceObserver((list) => {
  for (const task of list.getEntries()) window.longTasks.push(task.duration);
}).observe({ type: 'longtask' });
true"""
# Each task of a thread with its CPU time (toplevel), and V8's collections (v8).
TRACE_CATEGORIES = ["toplevel", "v8"]
TASK = "ThreadControllerImpl::RunTask"
GC_PAUSES = {"MajorGC", "MinorGC", "V8.GCScavenger", "V8.GCIncrementalMarking"}


async def load(run: Running, token: str, count: int) -> None:
    for start in range(0, count, 10_000):
        size = min(10_000, count - start)
        batches = [
            [entry(ETL, f"bulk {start + b * 500 + i}") for i in range(min(500, size - b * 500))]
            for b in range((size + 499) // 500)
        ]
        await run.publish(token, batches, producer=f"bulk-{start}")


def serve_from(web: Path) -> Callable[[Route], Awaitable[None]]:
    """A route handler answering the page's /static/ files from `web` (another tree's)."""

    async def answer(route: Route) -> None:
        name = route.request.url.split("/static/", 1)[1].split("?", 1)[0]
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        await route.fulfill(body=(web / name).read_bytes(), content_type=kind)

    return answer


async def follow(browser: Browser, count: int, web: Path | None) -> dict[str, float]:
    """One page on a fresh gateway: `count` entries loaded, then the live stream followed."""
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    if web is not None:
        await context.route("**/static/**", serve_from(web))
    async with running_gateway(
        history_entries=count + 10_000, send_buffer_bytes=64 << 20, publish_rate=0.0
    ) as run:
        try:
            return await measure(browser, await context.new_page(), run, count)
        finally:
            await context.close()


async def measure(browser: Browser, page: Page, run: Running, count: int) -> dict[str, float]:
    """Sign in, connect, load `count` entries, follow the live stream: the figures."""
    await sign_in(page, run.http)
    await connect(page)
    token = run.token("svc", publish=["logs:>"])
    empty = await heap_used(page)
    await browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
    await load(run, token, count)
    await expect(page.locator("#count")).to_have_text(f"{count:,} entries", timeout=180_000)
    loading = main_thread(await browser.stop_tracing())
    await page.evaluate(FOLLOW_WATCH)
    await page.evaluate(LONG_TASKS)
    await browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
    await steady_stream(run, token, SECONDS)  # batches of 10 every 50 ms
    await page.get_by_text(f"steady {int(SECONDS / 0.05) - 1}-9").wait_for(timeout=30_000)
    following = main_thread(await browser.stop_tracing())
    gaps = sorted(await page.evaluate("window.gaps"))
    tasks = await page.evaluate("window.longTasks")
    # Measured last: the full collection it forces would put off the next one.
    per_entry = (await heap_used(page) - empty) / await page.evaluate("logsPage.view.size")
    return {
        "p50_ms": round(statistics.median(gaps), 1),
        "p95_ms": round(gaps[int(0.95 * len(gaps))], 1),
        "longest_ms": round(gaps[-1], 1),
        "long_tasks": len(tasks),
        "long_task_ms": round(sum(tasks)),
        "rows_written": await page.evaluate("window.filled"),
        **following,
        # While the entries came in, V8's major collections walked what was held so far.
        "load_gc_longest_ms": loading["gc_longest_ms"],
        "load_gc_longest_cpu_ms": loading["gc_longest_cpu_ms"],
        "heap_bytes_per_entry": round(per_entry),
    }


def main_thread(trace: bytes) -> dict[str, float]:
    """From a trace: the renderer main thread's longest task and longest garbage collection
    pause, each in wall and in the thread's CPU ms, and the collections' sum."""
    doc = json.loads(trace)
    events: list[dict[str, Any]] = doc["traceEvents"] if isinstance(doc, dict) else doc
    mains = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name"
        if e["args"].get("name") == "CrRendererMain"
    }
    ours = [e for e in events if e.get("ph") == "X" and (e["pid"], e["tid"]) in mains]
    none = {"dur": 0, "tdur": 0}
    task = max((e for e in ours if e["name"] == TASK), key=lambda e: e["dur"], default=none)
    pauses = outermost([e for e in ours if e["name"] in GC_PAUSES])
    pause = max(pauses, key=lambda e: e["dur"], default=none)
    return {
        "task_longest_ms": round(task["dur"] / 1000, 1),
        "task_longest_cpu_ms": round(task.get("tdur", 0) / 1000, 1),
        "gc_longest_ms": round(pause["dur"] / 1000, 1),
        "gc_longest_cpu_ms": round(pause.get("tdur", 0) / 1000, 1),
        "gc_ms": round(sum(e["dur"] for e in pauses) / 1000, 1),
    }


def outermost(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events not nested in another of them (one thread's, so nested means within)."""
    kept: list[dict[str, Any]] = []
    for event in sorted(events, key=lambda e: (e["ts"], -e["dur"])):
        if not kept or event["ts"] >= kept[-1]["ts"] + kept[-1]["dur"]:
            kept.append(event)
    return kept


async def run(repeat: int, against: Path | None) -> dict[str, object]:
    pages: dict[str, Path | None] = {"this": None}
    if against is not None:
        pages["against"] = against / "gateway" / "web"
    runs: dict[str, list[dict[str, dict[str, float]]]] = {name: [] for name in pages}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(repeat):
                for name, web in pages.items():  # alternating: both under the same load
                    runs[name].append({str(n): await follow(browser, n, web) for n in SIZES})
        finally:
            await browser.close()
    return {name: report(done) for name, done in runs.items()}


def report(runs: list[dict[str, dict[str, float]]]) -> dict[str, object]:
    ratios = [r[str(SIZES[1])]["p95_ms"] / r[str(SIZES[0])]["p95_ms"] for r in runs]
    return {"runs": runs, "p95_ratio_min_median_max": summary(ratios)}


def summary(values: list[float]) -> list[float]:
    return [round(min(values), 2), round(statistics.median(values), 2), round(max(values), 2)]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench page")
    parser.add_argument("--repeat", type=int, default=3, help="runs (each: 1,000 then 100,000)")
    parser.add_argument(
        "--against", type=Path, metavar="TREE", help="also a checkout's page, in turn"
    )
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, range(os.cpu_count() or 1))  # undo the load cores' pinning
    print(json.dumps(asyncio.run(run(args.repeat, args.against)), indent=2))
    return 0
