"""OTLP/protobuf requests taken apart level by level, within otlp.limits.

Each level is parsed with a shallow message whose children are `bytes` (the wire format of
a message and of bytes is the same), so a level's counts are read before anything below it
is parsed: the resources and their scopes first, then a resource's attributes, and each
record only when it is converted (Decoded.record), after its encoded size is checked. A
scope is never parsed beyond the count of its attributes: no record carries them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from gateway.api.convert import MAX_ATTRIBUTES
from gateway.api.otlp.limits import OtlpLimits
from gateway.core.errors import Code, GatewayError, invalid


@dataclass(frozen=True, slots=True)
class Decoded:
    """A request's resources, each with its records still encoded, and how to parse one
    record: its LogRecord, or the error that refuses it alone at a limit (one that does
    not parse raises, refusing the request)."""

    resources: list[tuple[Resource, list[Any]]]
    records: int  # how many in all
    record: Callable[[Any], LogRecord | GatewayError]


def _shallow_messages() -> dict[str, Any]:
    """ExportLogsServiceRequest, ResourceLogs, Resource, ScopeLogs and InstrumentationScope
    with only the fields counted here, as bytes (the field numbers of OTLP's protos)."""
    file = descriptor_pb2.FileDescriptorProto(
        name="logs_gateway/otlp_shallow.proto", package="logs_gateway.otlp_shallow"
    )
    shapes = {
        "Request": (("resource_logs", 1, True),),
        "ResourceLogs": (("resource", 1, False), ("scope_logs", 2, True)),
        "Resource": (("attributes", 1, True),),
        "ScopeLogs": (("scope", 1, False), ("log_records", 2, True)),
        "Scope": (("attributes", 3, True),),
    }
    field = descriptor_pb2.FieldDescriptorProto
    for name, fields in shapes.items():
        message = file.message_type.add(name=name)
        for field_name, number, repeated in fields:
            label = field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL
            message.field.add(name=field_name, number=number, type=field.TYPE_BYTES, label=label)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{file.package}.{name}"))
        for name in shapes
    }


_SHALLOW = _shallow_messages()


def decode_protobuf(body: bytes, limits: OtlpLimits) -> Decoded:
    """The request of an OTLP/protobuf body; GatewayError refusing it whole at a limit, or
    INVALID_ARGUMENT naming what does not parse. Over --max-batch-entries records, only
    their count (Decoded.records), for the answer that rejects them all."""
    try:
        encoded = _shallow("Request", body).resource_logs
        limits.check_parts(len(encoded), "resourceLogs")  # each must hold a record
        resources = [_shallow("ResourceLogs", raw) for raw in encoded]
        limits.check_parts(sum(len(r.scope_logs) for r in resources), "scopeLogs")
        scopes = [[_shallow("ScopeLogs", raw) for raw in r.scope_logs] for r in resources]
        count = sum(len(s.log_records) for group in scopes for s in group)
        if count > limits.max_records:
            return Decoded([], count, _unused)
        pairs = zip(resources, scopes, strict=True)
        out = [_resource(r.resource, group, limits) for r, group in pairs]
    except DecodeError as e:
        raise invalid(f"body is not an OTLP protobuf logs request: {e}") from None
    return Decoded(out, count, lambda raw: record_of(raw, limits.max_record_bytes))


def _resource(
    encoded: bytes, scopes: list[Any], limits: OtlpLimits
) -> tuple[Resource, list[bytes]]:
    for scope_logs in scopes:
        limits.check_attributes(len(_shallow("Scope", scope_logs.scope).attributes), "scope")
    limits.check_attributes(len(_shallow("Resource", encoded).attributes), "resource")
    resource = Resource.FromString(encoded)
    limits.check_resource_values(pair.value for pair in resource.attributes)
    return resource, [raw for scope_logs in scopes for raw in scope_logs.log_records]


def _unused(raw: Any) -> LogRecord | GatewayError:
    raise AssertionError("a request over the record limit has no records to parse")


def _shallow(name: str, raw: bytes) -> Any:
    return _SHALLOW[name].FromString(raw)


def record_of(raw: bytes, max_bytes: int) -> LogRecord | GatewayError:
    """One record, parsed when its encoding is at most `max_bytes`, and its values checked."""
    if len(raw) > max_bytes:
        return GatewayError(Code.TOO_LARGE, f"record larger than {max_bytes} bytes encoded")
    try:
        record = LogRecord.FromString(raw)
    except DecodeError as e:
        raise invalid(f"body is not an OTLP protobuf logs request: {e}") from None
    attributes: Sequence[Any] = record.attributes
    if len(attributes) > MAX_ATTRIBUTES:  # its values are counted as they are converted
        return invalid(f"more than {MAX_ATTRIBUTES} attributes")
    return record
