"""logs_gateway_event_loop_lag_seconds: a loop held by other work shows in /metrics."""

from __future__ import annotations

import time

from tests.conftest import Running
from tests.test_metrics import scrape, value

LAG = "logs_gateway_event_loop_lag_seconds"


async def test_a_held_event_loop_is_observed_as_lag(gw: Running) -> None:
    before = await scrape(gw)
    held = value(before, LAG + "_count") - value(before, LAG + "_bucket", le="0.1")
    time.sleep(0.4)  # noqa: ASYNC251 - holds the loop (the gateway's too), as a long replay would
    after = await scrape(gw)
    # The monitor's timer came due while the loop was held: run at least 0.3 s late.
    assert value(after, LAG + "_count") - value(after, LAG + "_bucket", le="0.1") >= held + 1
    assert value(after, LAG + "_sum") - value(before, LAG + "_sum") >= 0.3
