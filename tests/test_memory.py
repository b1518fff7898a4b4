"""Stored events cost their size, not an encoder's scratch buffer."""

from __future__ import annotations

import tracemalloc

from gateway.core.events import Entry, make_event


def test_a_stored_event_holds_a_right_sized_json_line() -> None:
    entry = Entry("logs:etl:ws:wf", 1, 9, "extract done", "etl", {"rows": 120})
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        events = [make_event(entry, i, i) for i in range(1000)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert len(events[0].data) < 250
    assert grown / len(events) < 600, f"{grown / len(events):.0f} bytes per event"
