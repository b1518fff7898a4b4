"""Server-Sent Events encoding (DESIGN §6). Pure functions: event in, bytes out.

`data` is always one line of JSON (JSON escapes CR and LF), and ids and event names come
from the gateway itself, so no log content can forge or split an event.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.core.broker import Gap, Page
from gateway.core.events import Event, json_line

PING = b": ping\n\n"


def ping(epoch: bytes, seq: int) -> bytes:
    """A heartbeat that also moves the client's cursor to `seq`: an `id` with no data sets
    EventSource's lastEventId without dispatching any event."""
    return b"id: %s-%d\n: ping\n\n" % (epoch, seq)


def frame(event: str, data: Any, event_id: str | None = None, retry_ms: int | None = None) -> bytes:
    """One SSE event whose data is `data` as one line of JSON."""
    head = b"retry: %d\n" % retry_ms if retry_ms is not None else b""
    if event_id is not None:
        head += b"id: %s\n" % _field(event_id).encode()
    return b"%sevent: %s\ndata: %s\n\n" % (head, _field(event).encode(), json_line(data))


def log_frame(epoch: bytes, event: Event) -> bytes:
    """The `log` event of a stored entry; its id is the broker-wide resume cursor."""
    return b"id: %s-%d\nevent: log\ndata: %s\n\n" % (epoch, event.seq, event.data)


def log_frames(epoch: bytes, events: Iterable[Event], min_severity: int = 0) -> bytes:
    return b"".join(log_frame(epoch, e) for e in events if e.severity >= min_severity)


def gap_frame(epoch: bytes, gap: Gap) -> bytes:
    """The `gap` event of a replay; its id resumes after the loss it reports (none after a
    reset, whose cursor is the old epoch's)."""
    data: dict[str, Any] = {"channel": gap.pattern, "lost": gap.lost, "reason": gap.reason}
    if gap.reason != "reset":
        data["channels"] = gap.channels
    event_id = f"{epoch.decode()}-{gap.seq}" if gap.reason != "reset" else None
    return frame("gap", data, event_id)


def page_frames(epoch: bytes, page: Page, min_severity: int) -> bytes:
    """A page's frames in the order Page.in_order gives (a page is bounded: the stream
    writes each whole, once the client has taken the one before)."""
    return b"".join(
        gap_frame(epoch, item) if isinstance(item, Gap) else log_frame(epoch, item)
        for item in page.in_order()
        if isinstance(item, Gap) or item.severity >= min_severity
    )


# Line breaks of SSE (CR, LF) and of str.splitlines, which naive clients split on; and NUL,
# which makes a client ignore an `id`.
_BREAKS = dict.fromkeys(map(ord, "\r\n\0\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"))


def _field(value: str) -> str:
    """Field values must not hold line breaks (they would start a new field)."""
    return value.translate(_BREAKS)
