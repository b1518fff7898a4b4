"""The Logs page in Debian's Chromium, driven by Playwright against a gateway of
harness.gateway: how to launch the browser here, sign in and connect, a steady live stream
to follow, and what the page costs (frame gaps, rows written, heap).

scripts/test installs Chromium (`apt-get install chromium`); Playwright's own browser
downloads are never used.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from logs_gateway.v1 import logs_pb2 as pb
from playwright.async_api import Page

from harness.gateway import Running, entry

CHROMIUM = "/usr/bin/chromium"
# As root in a container: no sandbox; and no calls home, which this network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WORKSPACE = "ws1"
ETL = f"logs:etl:{WORKSPACE}:wf1"

# Every gap between two animation frames, and how many rows had their content written in
# each frame (a MutationObserver's batch is one frame's writes).
FOLLOW_WATCH = """window.gaps = [];
let last = performance.now();
const tick = (now) => {
  window.gaps.push(now - last);
  last = now;
  requestAnimationFrame(tick);
};
requestAnimationFrame(tick);
window.filled = 0;
new MutationObserver((records) => {
  const rows = new Set();
  for (const r of records) {
    const node = r.target.nodeType === Node.ELEMENT_NODE ? r.target : r.target.parentElement;
    const row = node.closest('.row');
    if (row) rows.add(row);
  }
  window.filled += rows.size;
}).observe(document.getElementById('rows'), {
  subtree: true, childList: true, characterData: true,
});
true"""


async def sign_in(page: Page, base: str, user: str = "alice", workspace: str = WORKSPACE) -> None:
    await page.goto(f"{base}/dev/login?user={user}&workspace={workspace}")
    assert page.url == f"{base}/?workspace={workspace}"


async def state(page: Page) -> str:
    return str(await page.get_attribute("#status", "data-state"))


async def wait_state(page: Page, wanted: str, timeout: float = 10_000) -> None:
    await page.wait_for_selector(f"#status[data-state={wanted}]", timeout=timeout)


async def connect(page: Page) -> None:
    await page.get_by_role("button", name="Connect Live Logs").click()
    await wait_state(page, "connected")


async def steady_stream(run: Running, token: str, seconds: float) -> None:
    """Live entries at 200 a second, in small batches, as a busy system sends them."""

    async def batches() -> AsyncIterator[pb.PublishRequest]:
        for k in range(int(seconds / 0.05)):
            entries = [entry(ETL, f"steady {k}-{i}") for i in range(10)]
            yield pb.PublishRequest(producer_id="steady", sequence=k + 1, entries=entries)
            await asyncio.sleep(0.05)

    stub, metadata = run.ingest(token)
    async for ack in stub.Publish(batches(), metadata=metadata):
        assert all(r.code == 0 for r in ack.results)


async def heap_used(page: Page) -> int:
    """Bytes of the page's JS heap in use after a full garbage collection (Chromium's
    DevTools protocol): what every major collection walks."""
    cdp = await page.context.new_cdp_session(page)
    try:
        await cdp.send("HeapProfiler.collectGarbage")
        usage = await cdp.send("Runtime.getHeapUsage")
        return int(usage["usedSize"])
    finally:
        await cdp.detach()
