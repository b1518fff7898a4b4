"""OTLP/JSON: the protobuf JSON mapping with OTLP's one change, trace and span ids as hex.

protobuf's own parser does the rest of what OTLP/JSON asks: camelCase or original field
names, enums by name or number, 64-bit integers as strings or numbers, unknown fields
ignored (a newer client may send fields this version does not know). It is slow (pure
Python, microseconds a field), so it parses one resource or one record at a time, each
after its counts are checked on the JSON itself (otlp.limits), as for protobuf bodies: as
the body is read (otlp.json_stream), and a resource's values before it is parsed.
"""

from __future__ import annotations

import base64
from typing import Any, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from gateway.api.convert import MAX_ATTRIBUTES
from gateway.api.otlp.decode import Decoded
from gateway.api.otlp.json_stream import read_document
from gateway.api.otlp.limits import OtlpLimits, check_values, json_children
from gateway.core.errors import GatewayError, invalid

_ID_FIELDS = ("traceId", "spanId", "trace_id", "span_id")
M = TypeVar("M", bound=Message)


async def decode_json(body: bytes, limits: OtlpLimits) -> Decoded:
    """The request of an OTLP/JSON body, its resources parsed as they are iterated;
    GatewayError refusing it whole at a limit, or INVALID_ARGUMENT naming what does not
    parse."""
    doc = await read_document(body, limits, record_of)  # counted, each record parsed, as read
    if not isinstance(doc, dict):
        raise invalid("body must be a JSON object with 'resourceLogs'")
    resources = _list(doc, "resourceLogs", "resource_logs")
    scopes = [_list(r, "scopeLogs", "scope_logs") for r in resources]
    records = [[_list(s, "logRecords", "log_records") for s in group] for group in scopes]
    out = (
        (_resource(r, group, limits), [record for rs in in_scopes for record in rs])
        for r, group, in_scopes in zip(resources, scopes, records, strict=True)
    )
    return Decoded(out, _read)


def _resource(item: Any, scopes: list[Any], limits: OtlpLimits) -> Resource:
    for scope in scopes:
        _list(_object(scope, "scope"), "attributes")  # counted as read: not a list?
    resource = _object(item, "resource")
    attributes = _list(resource, "attributes")
    limits.check_resource_values((_object(pair, "value") for pair in attributes), json_children)
    return _parsed(resource or {}, Resource())


def _read(item: Any) -> LogRecord | GatewayError:
    """A record as read: parsed already, refused, or (not an object) to refuse now."""
    return item if isinstance(item, LogRecord | GatewayError) else record_of(item)


def record_of(item: Any) -> LogRecord | GatewayError:
    """One record's object, parsed after its values are checked; the error refusing it
    alone at a limit. Raises INVALID_ARGUMENT when it does not parse."""
    attributes = _list(item, "attributes")
    if len(attributes) > MAX_ATTRIBUTES:
        return invalid(f"more than {MAX_ATTRIBUTES} attributes")
    values = [_object(item, "body"), *(_object(pair, "value") for pair in attributes)]
    try:
        check_values(values, json_children)
    except GatewayError as e:
        return e
    for name in _ID_FIELDS:
        if isinstance(_object(item, name), str):
            item[name] = _hex_to_base64(item[name], name)
    return _parsed(item, LogRecord())


def _parsed(item: Any, message: M) -> M:
    if not isinstance(item, dict):
        raise invalid(f"a {message.DESCRIPTOR.name} must be a JSON object")
    try:
        json_format.ParseDict(item, message, ignore_unknown_fields=True)
    except json_format.ParseError as e:
        raise invalid(f"body is not an OTLP/JSON logs request: {e}") from None
    return message


def _list(parent: Any, *names: str) -> list[Any]:
    """A list field in either spelling; empty when it or its parent is absent."""
    for name in names:
        children = _object(parent, name)
        if isinstance(children, list):
            return children
        if children is not None:
            raise invalid(f"body is not an OTLP/JSON logs request: {name!r} must be a list")
    return []


def _object(parent: Any, name: str) -> Any:
    """A field of an object; None when it or the object is absent."""
    if parent is None:
        return None
    if not isinstance(parent, dict):
        raise invalid(f"body is not an OTLP/JSON logs request: {parent!r:.40} is not an object")
    return parent.get(name)


def _hex_to_base64(text: str, name: str) -> str:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise invalid(f"{name} {text[:40]!r} is not hex") from None
    return base64.b64encode(raw).decode()


def to_json(message: Message) -> bytes:
    """A response (or a google.rpc.Status) as OTLP/JSON."""
    return orjson.dumps(json_format.MessageToDict(message))
