"""SSE encoding, byte for byte."""

from __future__ import annotations

from gateway.core import sse
from gateway.core.events import Entry, make_event


def _event(message: str, seq: int = 42, severity: int = 13) -> bytes:
    entry = Entry("logs:etl:w:f", 1_795_744_279_043_427_000, severity, message, "etl", {"k": "v"})
    return sse.log_frame(b"abc123", make_event(entry, 7, seq))


def test_log_frame_exact_bytes() -> None:
    assert _event("slow step") == (
        b"id: abc123-42\nevent: log\n"
        b'data: {"channel":"logs:etl:w:f","offset":7,"time":"2026-11-27T01:51:19.043427000Z",'
        b'"level":"warn","severity":13,"message":"slow step","source":"etl",'
        b'"attributes":{"k":"v"}}\n\n'
    )


def test_newlines_in_message_stay_inside_one_data_line() -> None:
    frame = _event("a\n\nevent: ready\ndata: x\r\n\r\nid: 1")
    assert frame.count(b"\n\n") == 1 and frame.endswith(b"\n\n")
    assert b"\r" not in frame
    assert frame.count(b"\ndata: ") == 1


def test_frame_strips_line_breaks_from_fields() -> None:
    frame = sse.frame("ready\nevent: log", {"a": 1}, event_id="1\r\n2", retry_ms=3000)
    assert frame == b'retry: 3000\nid: 12\nevent: readyevent: log\ndata: {"a":1}\n\n'


def test_severity_filter() -> None:
    entries = [Entry("logs:a:b", 1, sev, str(sev), "s", {}) for sev in (5, 9, 13, 17)]
    events = [make_event(e, i, i + 1) for i, e in enumerate(entries)]
    joined = sse.log_frames(b"e", events, 13)
    assert joined.count(b"event: log") == 2
    assert b'"message":"13"' in joined and b'"message":"17"' in joined
