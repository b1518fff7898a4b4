"""Log entries as accepted, and events as stored (an entry with its place in history).

An event is encoded to its JSON line once, when it is stored; every reader (SSE fan-out,
history replay, Redis) then reuses those bytes.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

# OpenTelemetry severity ranges: TRACE 1-4, DEBUG 5-8, INFO 9-12, WARN 13-16, ERROR 17-20,
# FATAL 21-24. A level name stands for the lowest number of its range.
LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
_ALIASES = {"warning": "warn", "critical": "fatal", "err": "error", "panic": "fatal"}
MAX_SEVERITY = 24

Attributes = dict[str, str | int | float | bool]


def level_name(severity: int) -> str:
    """Level name of an OpenTelemetry severity number (0, unspecified, counts as info)."""
    if 0 <= severity <= MAX_SEVERITY:
        return _LEVEL_NAMES[severity]
    return "info" if severity < 0 else "fatal"


_LEVEL_NAMES = ("info", *(LEVELS[(s - 1) >> 2] for s in range(1, MAX_SEVERITY + 1)))


def level_severity(name: str) -> int:
    """Lowest severity number of a level name (any case, spaces around it allowed);
    raises ValueError for an unknown name."""
    severity = _SEVERITY_OF.get(name)  # as sent, mostly: one lookup on the publish path
    if severity is None:
        severity = _SEVERITY_OF.get(name.strip().lower())
        if severity is None:
            raise ValueError(f"unknown level {name!r}; use one of {', '.join(LEVELS)}")
    return severity


_SEVERITY_OF = {
    name: LEVELS.index(_ALIASES.get(name, name)) * 4 + 1 for name in (*LEVELS, *_ALIASES)
}


# Entry and Event are built for every entry published and never changed after (but for an
# entry's missing time and source, filled in by Ingest when it accepts the entry). They are
# not frozen: a frozen dataclass sets each field through object.__setattr__, which made
# building one cost five times as much (0.6 us), a tenth of the whole publish path.


@dataclass(slots=True)
class Entry:
    """A validated log entry, as a publisher sent it."""

    channel: str
    time_ns: int
    severity: int
    message: str
    source: str
    attributes: Attributes
    trace_id: str = ""
    span_id: str = ""


@dataclass(slots=True)
class Event:
    """A stored entry: `offset` counts within its channel, `seq` across the whole broker."""

    channel: str
    offset: int
    seq: int
    severity: int
    data: bytes  # the one-line JSON form, shared by every reader
    # When the memory broker stored it (its monotonic clock); not part of what it is.
    stored_at: float = field(default=0.0, compare=False)


def encode_data(entry: Entry, offset: int) -> bytes:
    """The JSON line of a stored entry (the SSE `data` and the Redis payload)."""
    severity = entry.severity
    doc: dict[str, Any] = {
        "channel": entry.channel,
        "offset": offset,
        "time": format_time(entry.time_ns),
        # level_name's table read here: a stored entry's severity is in range (Ingest).
        "level": _LEVEL_NAMES[severity] if 0 <= severity <= MAX_SEVERITY else level_name(severity),
        "severity": severity,
        "message": entry.message,
        "source": entry.source,
        "attributes": entry.attributes,
    }
    if entry.trace_id:
        doc["trace_id"] = entry.trace_id
        doc["span_id"] = entry.span_id
    return json_line(doc)


# Line separators JSON leaves raw that str.splitlines, and so many a naive SSE client, ends
# a line on; escaped, a message holding them cannot split the data line there either.
_RAW_BREAKS = (
    (b"\xc2\x85", b"\\u0085"),
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
)


def json_line(doc: Any) -> bytes:
    """`doc` as JSON that every client reads as one line (the SSE `data` of an event)."""
    # A right-sized copy: orjson returns its bytes in a 4 KiB buffer, which history,
    # holding thousands of these, would keep whole (20x the memory).
    data = memoryview(orjson.dumps(doc)).tobytes()
    if data.isascii():  # one quick pass for the common case, instead of three searches
        return data
    for raw, escaped in _RAW_BREAKS:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


def make_event(entry: Entry, offset: int, seq: int) -> Event:
    return Event(entry.channel, offset, seq, entry.severity, encode_data(entry, offset))


def decode_data(data: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(data)
    return doc


def format_time(time_ns: int) -> str:
    """RFC 3339 UTC at full (nanosecond) precision, e.g. 2026-11-27T01:02:03.123456789Z:
    OTLP records carry nanoseconds, and a subscriber sees the publisher's own time."""
    global _last_second
    seconds = time_ns // 1_000_000_000
    last = _last_second  # one read: another thread may replace it meanwhile
    if last[0] != seconds:
        # strftime was the publish path's largest cost per entry, and the entries of a
        # batch mostly share their second.
        text = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        last = _last_second = (seconds, text)
    nanos = time_ns % 1_000_000_000
    millis, rest = divmod(nanos, 1_000_000)
    return f"{last[1]}.{_DIGITS[millis]}{_DIGITS[rest // 1000]}{_DIGITS[rest % 1000]}Z"


_last_second = (-1, "")
_DIGITS = tuple(f"{n:03d}" for n in range(1000))  # half the cost of formatting with :09d
_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z")


def parse_time(text: str) -> int:
    """Inverse of format_time; also reads fewer fraction digits (lines stored before
    nanoseconds had six), or none."""
    match = _TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"time {text!r} must be RFC 3339 UTC like 2026-11-27T01:02:03.123Z")
    stamp = dt.datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    fraction = (match[2] or "").ljust(9, "0")
    return int(stamp.timestamp()) * 1_000_000_000 + int(fraction)
