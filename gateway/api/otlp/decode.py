"""OTLP/protobuf requests taken apart level by level, within otlp.limits.

The levels above the records (the request, its resources, their scopes) are read by a
walk of the wire format that stops at the first limit: resources, scopes and records are
counted as they are found, so a request of a million empty ones costs the walk of a
thousand, not a parse of a million (2 bytes each, protobuf's parser takes about 50 ns per
element, all in one call that holds the loop). Fields the walk does not read (unknown
ones, a schema URL) are counted too: 1.9 million of them took the walk 1-1.5 s. A resource
is parsed after its attributes are counted and its encoded size checked, each record only
when it is converted (Decoded.record), after its encoded size is checked. A scope is never
parsed beyond the count of its attributes: no record carries them.

The walk is lazy: each resource is read when the conversion reaches it, so the loop gets
its turns between resources too (a request of 1,000 resources of 128 attributes is 128,000
fields to walk).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from gateway.api.convert import MAX_ATTRIBUTES
from gateway.api.otlp.limits import OtlpLimits
from gateway.core.errors import Code, GatewayError, invalid

# OTLP's field numbers: the request's resource_logs, a ResourceLogs' resource and
# scope_logs, a ScopeLogs' scope and log_records, a Resource's and a scope's attributes.
RESOURCE_LOGS, RESOURCE, SCOPE_LOGS, SCOPE, LOG_RECORDS = 1, 1, 2, 1, 2
RESOURCE_ATTRIBUTES, SCOPE_ATTRIBUTES = 1, 3
MAX_OTHER_FIELDS = 1000  # fields of one message besides those the walk reads


@dataclass(frozen=True, slots=True)
class Decoded:
    """A request's resources, each with its records still encoded, read as they are
    iterated (a limit passed raises then, refusing the request), and how to parse one
    record: its LogRecord, or the error that refuses it alone at a limit (one that does
    not parse raises, refusing the request)."""

    resources: Iterable[tuple[Resource, list[Any]]]
    record: Callable[[Any], LogRecord | GatewayError]


def decode_protobuf(body: bytes, limits: OtlpLimits) -> Decoded:
    """The request of an OTLP/protobuf body, its resources read as they are iterated."""
    return Decoded(_resources(body, limits), lambda raw: record_of(raw, limits.max_record_bytes))


def _resources(body: bytes, limits: OtlpLimits) -> Iterator[tuple[Resource, list[memoryview]]]:
    """Each resource with its records; GatewayError refusing the request at a limit, or
    INVALID_ARGUMENT naming what does not parse."""
    resources = _Count(lambda n: limits.check_parts(n, "resourceLogs"))
    scopes = _Count(lambda n: limits.check_parts(n, "scopeLogs"))
    records = _Count(limits.check_records)
    try:
        for encoded in _fields(memoryview(body), RESOURCE_LOGS, resources):
            resource = memoryview(b"")
            groups = []
            for number, payload in _fields_of(encoded, (RESOURCE, SCOPE_LOGS)):
                if number == RESOURCE:
                    resource = payload
                else:
                    scopes.take()
                    groups.append(payload)
            yield _resource(resource, groups, records, limits)
    except _TooManyFields:
        raise limits.refuse(
            "fields", f"more than {MAX_OTHER_FIELDS} unknown fields in one message"
        ) from None
    except DecodeError as e:
        raise invalid(f"body is not an OTLP protobuf logs request: {e}") from None


def _resource(
    encoded: memoryview, scopes: list[memoryview], records: _Count, limits: OtlpLimits
) -> tuple[Resource, list[memoryview]]:
    out: list[memoryview] = []
    for scope_logs in scopes:
        for number, payload in _fields_of(scope_logs, (SCOPE, LOG_RECORDS)):
            if number == SCOPE:
                _count_attributes(payload, SCOPE_ATTRIBUTES, "scope", limits)
            else:
                records.take()
                out.append(payload)
    _count_attributes(encoded, RESOURCE_ATTRIBUTES, "resource", limits)
    if len(encoded) > limits.max_record_bytes:  # its values are counted once it is parsed
        raise limits.refuse(
            "resource_bytes", f"resource larger than {limits.max_record_bytes} bytes encoded"
        )
    resource = Resource.FromString(bytes(encoded))
    limits.check_resource_values(pair.value for pair in resource.attributes)
    return resource, out


def _count_attributes(encoded: memoryview, number: int, of: str, limits: OtlpLimits) -> None:
    for _ in _fields(encoded, number, _Count(lambda n: limits.check_attributes(n, of))):
        pass


class _Count:
    """Counts parts of a request as they are found, `check` refusing one too many."""

    def __init__(self, check: Callable[[int], None]) -> None:
        self._check = check
        self._count = 0

    def take(self) -> None:
        self._count += 1
        self._check(self._count)


def _fields(message: memoryview, number: int, count: _Count) -> Iterator[memoryview]:
    """The payloads of the length-delimited field `number`, each counted."""
    for _, payload in _fields_of(message, (number,)):
        count.take()
        yield payload


class _TooManyFields(DecodeError):
    """A message holds more than MAX_OTHER_FIELDS fields the walk skips."""


def _fields_of(message: memoryview, numbers: Sequence[int]) -> Iterator[tuple[int, memoryview]]:
    """(number, payload) of the message's length-delimited fields among `numbers`, in
    order, as the protobuf wire format lays them out; other fields skipped, at most
    MAX_OTHER_FIELDS of them."""
    pos, end = 0, len(message)
    others = 0
    while pos < end:
        key, pos = _varint(message, pos)
        wire = key & 7
        if wire != 2 or key >> 3 not in numbers:
            others += 1
            if others > MAX_OTHER_FIELDS:
                raise _TooManyFields
        if wire == 2:
            size, pos = _varint(message, pos)
            if pos + size > end:
                raise DecodeError("truncated message")
            if key >> 3 in numbers:
                yield key >> 3, message[pos : pos + size]
            pos += size
        elif wire == 0:
            pos = _varint(message, pos)[1]
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise DecodeError(f"unexpected wire type {wire}")
    if pos != end:
        raise DecodeError("truncated message")


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while shift < 64:
        if pos >= len(data):
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise DecodeError("varint longer than 10 bytes")


def record_of(raw: memoryview, max_bytes: int) -> LogRecord | GatewayError:
    """One record, parsed when its encoding is at most `max_bytes`, and its values checked."""
    if len(raw) > max_bytes:
        return GatewayError(Code.TOO_LARGE, f"record larger than {max_bytes} bytes encoded")
    try:
        record = LogRecord.FromString(bytes(raw))
    except DecodeError as e:
        raise invalid(f"body is not an OTLP protobuf logs request: {e}") from None
    attributes: Sequence[Any] = record.attributes
    if len(attributes) > MAX_ATTRIBUTES:  # its values are counted as they are converted
        return invalid(f"more than {MAX_ATTRIBUTES} attributes")
    return record
