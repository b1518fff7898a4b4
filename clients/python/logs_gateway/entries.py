"""Log entries from plain Python values: levels, attributes, timestamps."""

from __future__ import annotations

import time
from collections.abc import Mapping

from logs_gateway.v1 import logs_pb2 as pb

AttributeValue = str | int | float | bool
Attributes = Mapping[str, AttributeValue]

# OpenTelemetry severity numbers: each level name stands for the lowest number of its range.
SEVERITIES = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "error": 17, "fatal": 21}
_ALIASES = {"warning": "warn", "critical": "fatal", "err": "error"}


def severity(level: str | int) -> int:
    """Severity number of a level name (`warn`, `error`, ...) or of a number 0-24."""
    if isinstance(level, int):
        if not 0 <= level <= 24:
            raise ValueError(f"severity {level} is outside 0-24")
        return level
    key = level.strip().lower()
    number = SEVERITIES.get(_ALIASES.get(key, key))
    if number is None:
        raise ValueError(f"unknown level {level!r}; use one of {', '.join(SEVERITIES)}")
    return number


def attribute(value: object) -> pb.AttributeValue:
    """A typed attribute value; anything that is not a str, int, float or bool becomes its
    str(), so a caller's object never makes a log call fail."""
    if isinstance(value, bool):
        return pb.AttributeValue(bool_value=value)
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return pb.AttributeValue(int_value=value)
    if isinstance(value, float):
        return pb.AttributeValue(double_value=value)
    return pb.AttributeValue(string_value=value if isinstance(value, str) else str(value))


def make_entry(
    channel: str,
    message: str,
    *,
    level: str | int = "info",
    attributes: Mapping[str, object] | None = None,
    source: str = "",
    time_ns: int | None = None,
    trace_id: bytes = b"",
    span_id: bytes = b"",
) -> pb.LogEntry:
    """One LogEntry, stamped now unless `time_ns` is given (so an entry buffered while the
    gateway is away keeps the time it happened)."""
    return pb.LogEntry(
        channel=channel,
        body=message,
        severity_number=severity(level),  # type: ignore[arg-type]
        attributes={k: attribute(v) for k, v in (attributes or {}).items()},
        source=source,
        time_unix_nano=time.time_ns() if time_ns is None else time_ns,
        trace_id=trace_id,
        span_id=span_id,
    )
