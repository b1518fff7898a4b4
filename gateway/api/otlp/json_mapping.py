"""OTLP/JSON: the protobuf JSON mapping with OTLP's one change, trace and span ids as hex.

protobuf's own parser does the rest of what OTLP/JSON asks: camelCase or original field
names, enums by name or number, 64-bit integers as strings or numbers, unknown fields
ignored (a newer client may send fields this version does not know).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from gateway.core.errors import invalid

_ID_FIELDS = ("traceId", "spanId", "trace_id", "span_id")


def request_from_json(body: bytes) -> ExportLogsServiceRequest:
    """The request of an OTLP/JSON body; INVALID_ARGUMENT naming what does not parse."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise invalid(f"body is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise invalid("body must be a JSON object with 'resourceLogs'")
    for record in _records(doc):
        for name in _ID_FIELDS:
            if isinstance(record.get(name), str):
                record[name] = _hex_to_base64(record[name], name)
    request = ExportLogsServiceRequest()
    try:
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except json_format.ParseError as e:
        raise invalid(f"body is not an OTLP/JSON logs request: {e}") from None
    return request


def _records(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The log record objects of a request; a misshapen level is left to the parser."""
    out = []
    for resource in _objects(doc, "resourceLogs", "resource_logs"):
        for scope in _objects(resource, "scopeLogs", "scope_logs"):
            out += _objects(scope, "logRecords", "log_records")
    return out


def _objects(parent: dict[str, Any], *names: str) -> list[dict[str, Any]]:
    for name in names:
        children = parent.get(name)
        if isinstance(children, list):
            return [c for c in children if isinstance(c, dict)]
    return []


def _hex_to_base64(text: str, name: str) -> str:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise invalid(f"{name} {text[:40]!r} is not hex") from None
    return base64.b64encode(raw).decode()


def to_json(message: Message) -> bytes:
    """A response (or a google.rpc.Status) as OTLP/JSON."""
    return orjson.dumps(json_format.MessageToDict(message))
