"""What one OTLP request may hold, checked before each part of it is parsed or converted.

A body within --max-message-bytes can still be millions of values (an empty AnyValue is 2
bytes of protobuf), and parsing and converting each costs the loop a microsecond or more.
So the request is taken apart level by level (gateway.api.otlp.decode), and each level's
counts are checked before the level below is parsed: resources, scopes and records per
request, attributes of a resource and a scope, the encoded size of a record. The values of
a record (its body and attribute values: how many, how deeply nested) are counted as it is
converted (ValueBudget), or for OTLP/JSON before it is parsed (check_values). Counts stop
at the first one past a limit, so a refusal costs what the limit allows, not what was sent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from gateway.api.convert import MAX_ATTRIBUTES
from gateway.core.errors import Code, GatewayError, invalid

MAX_VALUES = 1024  # values in one record's body and attributes, nested ones included
MAX_DEPTH = 8  # arrays and key-value lists inside one another
RECORD_BYTES_PER_ENTRY_BYTE = 4  # a record's encoding, at most this times --max-entry-bytes


@dataclass(frozen=True, slots=True)
class OtlpLimits:
    """The request-wide bounds, from the settings, and the requests refused at each."""

    max_records: int  # --max-batch-entries
    max_record_bytes: int  # RECORD_BYTES_PER_ENTRY_BYTE x --max-entry-bytes
    refused: Counter[str] = field(default_factory=Counter)  # by limit, for /metrics

    @classmethod
    def of(cls, max_batch_entries: int, max_entry_bytes: int) -> OtlpLimits:
        return cls(max_batch_entries, RECORD_BYTES_PER_ENTRY_BYTE * max_entry_bytes)

    def check_parts(self, count: int, name: str) -> None:
        """Resources or scopes of a request (`name`): no more than records allowed (one
        without records holds nothing), so that their count bounds the work of reading
        them."""
        if count > self.max_records:
            raise self.refuse("parts", f"more than {self.max_records} {name} (--max-batch-entries)")

    def check_records(self, count: int) -> None:
        if count > self.max_records:
            raise self.refuse(
                "records", f"more than {self.max_records} log records (--max-batch-entries)"
            )

    def check_resource_values(
        self, values: Iterable[Any], children: Children | None = None
    ) -> None:
        """check_values of a resource's attributes, which refuses the whole request."""
        try:
            check_values(values, children)
        except GatewayError as e:
            raise self.refuse("resource_values", f"resource attributes: {e.message}") from None

    def check_attributes(self, count: int, of: str) -> None:
        """The attributes of a resource or a scope, shared by all its records."""
        if count > MAX_ATTRIBUTES:
            raise self.refuse(f"{of}_attributes", f"more than {MAX_ATTRIBUTES} {of} attributes")

    def refuse(self, limit: str, message: str) -> GatewayError:
        """The whole request refused; counted by `limit`."""
        self.refused[limit] += 1
        return GatewayError(Code.TOO_LARGE, message, reason=limit)


class ValueBudget:
    """The values one record's conversion may read, counted as it reads them: its body
    and attribute values are refused at the first container past MAX_VALUES values or
    MAX_DEPTH levels, before the container is read."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_VALUES

    def take(self, count: int, depth: int) -> None:
        """Read `count` values inside a container `depth` levels deep (1: a body or an
        attribute value itself)."""
        self.left -= count
        if self.left < 0:
            raise invalid(TOO_MANY)
        if count and depth >= MAX_DEPTH:
            raise invalid(TOO_DEEP)


TOO_MANY = f"more than {MAX_VALUES} values in its body and attributes"
TOO_DEEP = f"values nested more than {MAX_DEPTH} deep"


def check_values(values: Iterable[Any], children: Children | None = None) -> None:
    """INVALID_ARGUMENT past MAX_VALUES values or MAX_DEPTH levels of nesting, found
    without visiting more than MAX_VALUES values. `values` are AnyValue messages, or with
    `children=json_children` their OTLP/JSON objects."""
    below = children or proto_children
    stack = [(value, 1) for value in values]
    seen = len(stack)
    while stack:
        value, depth = stack.pop()
        items = below(value)
        if not items:
            continue
        seen += len(items)
        if seen > MAX_VALUES:
            raise invalid(TOO_MANY)
        if depth >= MAX_DEPTH:
            raise invalid(TOO_DEEP)
        stack += [(child, depth + 1) for child in items]


Children = Callable[[Any], Sequence[Any]]


def proto_children(value: AnyValue) -> Sequence[AnyValue]:
    """The values directly inside an array or key-value list; none for a scalar."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return value.array_value.values
    if kind == "kvlist_value":
        return _values(value.kvlist_value.values, lambda pair: pair.value)
    return ()


def json_children(value: Any) -> Sequence[Any]:
    """proto_children of an OTLP/JSON value (either field spelling); none for anything
    that is not a list of values, which the parser refuses later."""
    if not isinstance(value, dict):
        return ()
    for name in ("arrayValue", "array_value", "kvlistValue", "kvlist_value"):
        inner = value.get(name)
        if isinstance(inner, dict) and isinstance(inner.get("values"), list):
            if name.startswith("array"):
                return inner["values"]  # type: ignore[no-any-return]
            return _values(inner["values"], _json_value)
    return ()


def _values(pairs: Sequence[Any], value_of: Callable[[Any], Any]) -> Sequence[Any]:
    """The values of key-value pairs; past MAX_VALUES the pairs themselves, whose count
    refuses them before any is read."""
    return [value_of(pair) for pair in pairs] if len(pairs) <= MAX_VALUES else pairs


def _json_value(pair: Any) -> Any:
    return pair.get("value") if isinstance(pair, dict) else None
