"""OTLP log records to entries, and the publish path's answers to OTLP responses.

An OTLP request nests records under resources and scopes; the gateway numbers them in
that order ("entry 3" in an error is the fourth record of the request) and publishes them
as one batch, so one request gets one answer: all stored, some rejected, or refused whole.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from gateway.api.otlp.decode import Decoded
from gateway.api.otlp.limits import ValueBudget
from gateway.core.channel_template import ChannelTemplate
from gateway.core.errors import GatewayError, invalid
from gateway.core.events import Attributes, Entry, Event, level_severity
from gateway.core.slices import Slices

CHANNEL_ATTRIBUTE = "logs_gateway.channel"
SERVICE_ATTRIBUTE = "service.name"
SEVERITY_TEXT_ATTRIBUTE = "severity_text"
_NO_ID = (b"", bytes(16), bytes(8))  # absent, or all zeros: OTLP's "no trace / no span"


async def entries_from(
    request: Decoded, template: ChannelTemplate | None
) -> list[Entry | GatewayError]:
    """One entry per log record, in order, or the error that refuses that record alone.

    Resources and records are read, parsed and converted in slices (core.slices), the
    loop free to serve others between them: a request at the size limit is thousands of
    records, or of resources."""
    items: list[Entry | GatewayError] = []
    slices = Slices()
    for resource_attributes, records in request.resources:
        resource = attributes_of(resource_attributes.attributes, ValueBudget())
        source = resource.get(SERVICE_ATTRIBUTE)
        scope = _Scope(resource, source if isinstance(source, str) else "", template)
        for raw in records:
            item = scope.entry_or_error(request.record(raw))  # raises: it does not parse
            if isinstance(item, GatewayError):
                item = invalid(f"entry {len(items)}: {item.message}")
            items.append(item)
            await slices.pause()
        await slices.pause()
    return items


class _Scope:
    """What the records of one resource share: its attributes, source, channel template."""

    def __init__(
        self, resource: dict[str, Any], source: str, template: ChannelTemplate | None
    ) -> None:
        self._resource = resource
        self._source = source
        self._template = template

    def entry_or_error(self, record: LogRecord | GatewayError) -> Entry | GatewayError:
        """The record's entry, or the error that refuses it."""
        if isinstance(record, GatewayError):
            return record
        try:
            return self.entry(record)
        except GatewayError as e:
            return e

    def entry(self, record: LogRecord) -> Entry:
        """The record's entry; its attributes and values are checked when it is decoded."""
        values = ValueBudget()  # read as converted: one pass, stopped at the first limit
        attributes = attributes_of(record.attributes, values)
        channel = self._channel(attributes)
        severity: int = record.severity_number
        text = record.severity_text
        if text:
            if not severity:
                severity = _severity_of(text)
            attributes.setdefault(SEVERITY_TEXT_ATTRIBUTE, text)
        return Entry(
            channel,
            record.time_unix_nano or record.observed_time_unix_nano,
            severity,
            text_of(record.body, values),
            self._source,
            attributes,
            _hex_id(record.trace_id, 16, "trace_id"),
            _hex_id(record.span_id, 8, "span_id"),
        )

    def _channel(self, attributes: Attributes) -> str:
        """The record's channel attribute (taken out), the resource's, else the template."""
        channel = attributes.pop(CHANNEL_ATTRIBUTE, None) or self._resource.get(CHANNEL_ATTRIBUTE)
        if channel is not None:
            if not isinstance(channel, str):
                raise invalid(f"attribute {CHANNEL_ATTRIBUTE!r} must be a string")
            return channel
        if self._template is None:
            raise invalid(
                f"no channel: set the attribute {CHANNEL_ATTRIBUTE!r} on the record or its "
                "resource, or start the gateway with --otlp-channel-template"
            )
        return self._template.render(lambda name: self._lookup(attributes, name))

    def _lookup(self, attributes: Attributes, name: str) -> str | None:
        value = attributes.get(name, self._resource.get(name))
        return None if value is None else str(value)


def _severity_of(text: str) -> int:
    """A severity number from a text alone; 0 (read as info) for a text of another scheme."""
    try:
        return level_severity(text)
    except ValueError:
        return 0


def _hex_id(raw: bytes, size: int, name: str) -> str:
    if raw in _NO_ID:
        return ""
    if len(raw) != size:
        raise invalid(f"{name} is {len(raw)} bytes; it must be {size}, or empty")
    return raw.hex()


def attributes_of(pairs: Iterable[KeyValue], values: ValueBudget) -> dict[str, Any]:
    """Attribute values as the entry keeps them: scalars as they are, arrays and maps as
    compact JSON text, bytes as base64; an attribute without a value is left out."""
    out: dict[str, Any] = {}
    for pair in pairs:
        value = pair.value
        kind = value.WhichOneof("value")
        if kind is None:
            continue
        if kind in _SCALARS:
            out[pair.key] = getattr(value, kind)
        else:
            out[pair.key] = text_of(value, values)
    return out


_SCALARS = frozenset(("string_value", "bool_value", "int_value", "double_value"))


def text_of(value: AnyValue, values: ValueBudget | None = None) -> str:
    """A body or attribute value as text: a string as it is, any other value as compact
    JSON (bytes as their base64 text)."""
    if value.WhichOneof("value") == "string_value":
        return value.string_value
    plain = _plain(value, values or ValueBudget(), 1)
    return plain if isinstance(plain, str) else orjson.dumps(plain).decode()


def _plain(value: AnyValue, values: ValueBudget, depth: int) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        items = value.array_value.values
        values.take(len(items), depth)
        return [_plain(v, values, depth + 1) for v in items]
    if kind == "kvlist_value":
        pairs = value.kvlist_value.values
        values.take(len(pairs), depth)
        return {kv.key: _plain(kv.value, values, depth + 1) for kv in pairs}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None if kind is None else getattr(value, kind)


def export_response(outcomes: Sequence[Event | GatewayError]) -> ExportLogsServiceResponse:
    """Success, or a partial success counting the rejected records and naming the first
    problem (OTLP clients do not resend rejected records)."""
    errors = [o for o in outcomes if isinstance(o, GatewayError)]
    if not errors:
        return ExportLogsServiceResponse()
    message = f"{len(errors)} of {len(outcomes)} log records rejected; first: {errors[0].message}"
    return ExportLogsServiceResponse(
        partial_success=ExportLogsPartialSuccess(
            rejected_log_records=len(errors), error_message=message
        )
    )
