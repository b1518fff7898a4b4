"""Entries in and out of their wire forms: protobuf messages and JSON objects."""

from __future__ import annotations

from typing import Any

from logs_gateway.v1 import logs_pb2 as pb

from gateway.core.broker import Gap
from gateway.core.errors import GatewayError, invalid
from gateway.core.events import Attributes, Entry, Event, decode_data, level_severity, parse_time

MAX_ATTRIBUTES = 128
ATTRIBUTE_TYPES = (str, int, float, bool)
INFO = level_severity("info")


def entry_from_proto(msg: pb.LogEntry) -> Entry | GatewayError:
    severity: int = msg.severity_number
    if not severity and msg.severity_text:
        try:
            severity = level_severity(msg.severity_text)
        except ValueError as e:
            return invalid(str(e))
    # Each field is read once: a read from the protobuf message costs more than the check.
    fields = msg.attributes
    if len(fields) > MAX_ATTRIBUTES:
        return invalid(f"more than {MAX_ATTRIBUTES} attributes")
    trace_id, span_id = msg.trace_id, msg.span_id
    if len(trace_id) not in (0, 16) or len(span_id) not in (0, 8):
        return invalid("trace_id must be 16 bytes and span_id 8 bytes, or both empty")
    attributes: Attributes = {}
    for name, value in fields.items() if fields else ():
        kind = value.WhichOneof("value")
        if kind is None:
            return invalid(f"attribute {name!r} has no value")
        attributes[name] = getattr(value, kind)
    return Entry(  # by position: keywords made this call three times as slow
        msg.channel,
        msg.time_unix_nano,
        severity,
        msg.body,
        msg.source,
        attributes,
        trace_id.hex() if trace_id else "",
        span_id.hex() if span_id else "",
    )


def attribute_to_proto(value: str | int | float | bool) -> pb.AttributeValue:
    if isinstance(value, bool):
        return pb.AttributeValue(bool_value=value)
    if isinstance(value, int):
        return pb.AttributeValue(int_value=value)
    if isinstance(value, float):
        return pb.AttributeValue(double_value=value)
    return pb.AttributeValue(string_value=value)


def entry_from_json(obj: Any) -> Entry | GatewayError:
    """An entry of POST /api/logs/publish: channel, message, optional level, attributes,
    source, time (RFC 3339 `...Z`, up to nanoseconds)."""
    if not isinstance(obj, dict):
        return invalid("each entry must be a JSON object")
    channel, message = obj.get("channel"), obj.get("message")
    if not isinstance(channel, str):
        return invalid("'channel' must be a string")
    if not isinstance(message, str):
        return invalid("'message' must be a string")
    level, stamp = obj.get("level"), obj.get("time")
    try:
        severity = level_severity(level) if level else INFO
        time_ns = parse_time(stamp) if stamp else 0
    except (ValueError, TypeError, AttributeError) as e:
        return invalid(str(e) if isinstance(e, ValueError) else "'level'/'time' must be strings")
    attributes = obj.get("attributes") or {}
    if not isinstance(attributes, dict) or len(attributes) > MAX_ATTRIBUTES:
        return invalid(f"'attributes' must be an object of at most {MAX_ATTRIBUTES} values")
    if attributes and not all(isinstance(v, ATTRIBUTE_TYPES) for v in attributes.values()):
        return invalid("attribute values must be strings, numbers or booleans")
    source = obj.get("source") or ""
    if not isinstance(source, str):
        return invalid("'source' must be a string")
    return Entry(channel, time_ns, severity, message, source, attributes)


def gap_to_proto(gap: Gap) -> pb.Gap:
    return pb.Gap(channel=gap.pattern, lost=gap.lost, reason=gap.reason, channels=gap.channels)


def entry_to_proto(event: Event) -> pb.StoredEntry:
    """A stored event as gRPC sends it, from its JSON line (times to the nanosecond)."""
    doc = decode_data(event.data)
    entry = pb.LogEntry(
        channel=doc["channel"],
        time_unix_nano=parse_time(doc["time"]),
        severity_number=doc["severity"],
        severity_text=doc["level"],
        body=doc["message"],
        attributes={k: attribute_to_proto(v) for k, v in doc["attributes"].items()},
        trace_id=bytes.fromhex(doc.get("trace_id", "")),
        span_id=bytes.fromhex(doc.get("span_id", "")),
        source=doc["source"],
    )
    return pb.StoredEntry(offset=event.offset, entry=entry)
