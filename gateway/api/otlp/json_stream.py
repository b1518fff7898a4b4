"""OTLP/JSON bodies read a slice at a time, each part counted as it is built.

orjson parses a whole body in one call that holds the loop: 100-1,000 ms for 4 MiB of
small objects on this machine (most of it the cyclic collector running over the millions
of objects made), before any count can be checked. Here ijson's C parser is fed CHUNK
bytes at a time and its events build the document between turns of the loop
(core.slices), the counts of otlp.limits checked as each list grows: a request past a
limit is refused at the first part past it, having built no more than the limits allow.

What is built is what orjson returns, less what json_mapping never reads (fields of a
request, a resource log, a resource or a scope other than those it reads; a scope's
attribute values, which are only counted), so the OTLP/JSON mapping is json_mapping's. A
record or a resource is built within PART_EVENTS parser events, more than any within the
limits needs, and within the bytes of text a record may hold (4 x --max-entry-bytes, as
for protobuf; protobuf's JSON parser runs a regular expression over every string, 100 ms
for 4 MB): a record past either (or past MAX_ATTRIBUTES) is kept as the error refusing it
alone and the rest of it skipped, a resource past either refuses the request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import ijson

from gateway.api.convert import MAX_ATTRIBUTES
from gateway.api.otlp.limits import MAX_VALUES, TOO_MANY, OtlpLimits
from gateway.core.errors import Code, GatewayError, invalid
from gateway.core.slices import Slices

CHUNK = 4096  # bytes parsed in one step: at most about 2,000 events
MAX_CHUNK = 64 * 1024  # a step's bytes inside a long string (below)
EVENTS = 512  # events built between two looks at the clock (a record is parsed at its end)
# Parser events one record or resource may take: one within the limits takes at most
# about 9 an attribute or value ({"key":"k","value":{"stringValue":"v"}} is 9).
PART_EVENTS = 16 * (MAX_VALUES + MAX_ATTRIBUTES)
_CONTAINERS = {"start_map": dict, "start_array": list}
_ENDS = frozenset(("end_map", "end_array"))
Check = Callable[[OtlpLimits, int, int], None]  # (limits, items of this list, of all)


async def read_document(
    body: bytes, limits: OtlpLimits, finish: Callable[[dict[str, Any]], Any]
) -> Any:
    """The body's JSON document as json_mapping reads it, each record replaced by what
    `finish` makes of it as soon as it is read (its parsed message: the objects of 1,000
    records of 60 attributes held at once cost a full garbage collection of ~60 ms);
    GatewayError refusing the request at the first limit passed, or INVALID_ARGUMENT
    when it is not JSON."""
    builder = _Builder(limits, finish)
    events = ijson.sendable_list()
    parser = ijson.basic_parse_coro(events, use_float=True)
    slices = Slices()
    start = 0
    size = CHUNK
    try:
        while start < len(body):
            parser.send(body[start : start + size])
            start += size
            # A chunk of no event is inside one long string, which the parser reads
            # again from its start at each chunk (4 MiB in chunks of 4 KiB took 2.8 s):
            # twice the size, up to MAX_CHUNK (whose events, past the string, are then
            # built in slices like any others).
            size = min(2 * size, MAX_CHUNK) if not events else CHUNK
            for first in range(0, len(events), EVENTS):
                builder.take(events[first : first + EVENTS])
                await slices.pause()
            del events[:]
            await slices.pause()  # a chunk of no event too: the parser read it
        parser.close()
    except ijson.JSONError as e:
        raise invalid(f"body is not valid JSON: {e}") from None
    builder.take(events)
    return builder.document


class _Role:
    """What a value at one place of an OTLP/JSON request is: the container it must be
    (None: any), the roles of its children (by key, else `other`; a list's `item`; None:
    skipped), how its items are counted, and whether it is a part (a resource, a record)."""

    def __init__(
        self,
        kind: type | None = None,
        keys: dict[str, _Role] | None = None,
        item: _Role | None = None,
        check: Check | None = None,
        part: bool = False,
    ) -> None:
        self.kind = kind
        self.keys = keys or {}
        self.other: _Role | None = None
        self.item = item
        self.check = check
        self.part = part
        self.placeholder = False  # kept as None, its content skipped (only counted)


def _spellings(role: _Role, *names: str) -> dict[str, _Role]:
    """A field under its JSON name and its proto name."""
    return dict.fromkeys(names, role)


def _record_attributes(limits: OtlpLimits, items: int, total: int) -> None:
    if items > MAX_ATTRIBUTES:
        raise _Rejected(invalid(f"more than {MAX_ATTRIBUTES} attributes"))


VALUE = _Role()
VALUE.other = VALUE.item = VALUE
COUNTED = _Role()
COUNTED.placeholder = True
RECORD = _Role(dict, {"attributes": _Role(list, item=VALUE, check=_record_attributes)}, part=True)
RECORD.other = VALUE
SCOPE = _Role(
    dict,
    {
        "attributes": _Role(
            list, item=COUNTED, check=lambda lim, n, _: lim.check_attributes(n, "scope")
        )
    },
)
RECORDS = _Role(list, item=RECORD, check=lambda lim, _, total: lim.check_records(total))
SCOPE_LOGS = _Role(dict, {"scope": SCOPE, **_spellings(RECORDS, "logRecords", "log_records")})
RESOURCE = _Role(
    dict,
    {
        "attributes": _Role(
            list, item=VALUE, check=lambda lim, n, _: lim.check_attributes(n, "resource")
        )
    },
    part=True,
)
SCOPES = _Role(
    list, item=SCOPE_LOGS, check=lambda lim, _, total: lim.check_parts(total, "scopeLogs")
)
RESOURCE_LOGS = _Role(dict, {"resource": RESOURCE, **_spellings(SCOPES, "scopeLogs", "scope_logs")})
REQUEST = _Role(
    dict,
    _spellings(
        _Role(
            list,
            item=RESOURCE_LOGS,
            check=lambda lim, _, total: lim.check_parts(total, "resourceLogs"),
        ),
        "resourceLogs",
        "resource_logs",
    ),
)


class _Rejected(Exception):
    """A record refused alone: `error` stands in its place."""

    def __init__(self, error: GatewayError) -> None:
        self.error = error


class _Frame:
    """An open container: its value, role, the key of a map's next value, its items."""

    __slots__ = ("items", "key", "role", "value")

    def __init__(self, value: Any, role: _Role) -> None:
        self.value = value
        self.role = role
        self.key = ""
        self.items = 0


class _Builder:
    """Builds a document from ijson's basic events, a batch of them at a time."""

    def __init__(self, limits: OtlpLimits, finish: Callable[[dict[str, Any]], Any]) -> None:
        self.document: Any = None
        self._limits = limits
        self._finish = finish
        self._stack: list[_Frame] = []  # open containers, innermost last
        self._skip = 0  # open containers being skipped
        self._totals: dict[_Role, int] = {}  # items of each counted role, request-wide
        self._part = -1  # the stack index of the open resource or record, if any
        self._left = 0  # its events left
        self._text = 0  # its bytes of text (keys and strings) left

    def take(self, events: Iterable[tuple[str, Any]]) -> None:
        for event, value in events:
            if self._skip:
                if event in _ENDS:
                    self._skip -= 1
                elif event in _CONTAINERS:
                    self._skip += 1
            elif event in _ENDS:
                if len(self._stack) - 1 == self._part:
                    self._end_part()
                self._stack.pop()
            else:
                try:
                    if self._part >= 0:
                        self._spend(value)
                    if event == "map_key":
                        self._stack[-1].key = value
                    else:
                        self._value(event, value)
                except _Rejected as e:
                    self._reject(e.error, event in _CONTAINERS)

    def _value(self, event: str, value: Any) -> None:
        container = _CONTAINERS.get(event)
        if not self._stack:
            self.document = self._open(container, REQUEST) if container else value
            return
        parent = self._stack[-1]
        if parent.value.__class__ is list:
            parent.items += 1
            self._count(parent)  # before the item opens: a refusal leaves nothing open
            role = parent.role.item
        else:
            role = parent.role.keys.get(parent.key, parent.role.other)
            if role is None:
                self._skip = int(container is not None)
                return
        if role is None or role.placeholder:
            self._skip = int(container is not None)
            value = None
        elif container is not None:
            value = self._open(container, role)
        if parent.value.__class__ is list:
            parent.value.append(value)
        else:
            parent.value[parent.key] = value

    def _open(self, container: type, role: _Role) -> Any:
        """A new container, open unless it is not the kind its role says (kept empty and
        skipped, for json_mapping to refuse by name)."""
        value = container()
        if role.kind is not None and role.kind is not container:
            self._skip = 1
            return value
        self._stack.append(_Frame(value, role))
        if role.part:
            self._part, self._left = len(self._stack) - 1, PART_EVENTS
            self._text = self._limits.max_record_bytes
        return value

    def _count(self, frame: _Frame) -> None:
        check = frame.role.check
        if check is not None:
            total = self._totals[frame.role] = self._totals.get(frame.role, 0) + 1
            check(self._limits, frame.items, total)

    def _spend(self, value: Any) -> None:
        """An event of the open part, and its text: past the part's budget, it is refused."""
        self._left -= 1
        if value.__class__ is str:
            self._text -= len(value)
        if self._left >= 0 and self._text >= 0:
            return
        record = self._stack[self._part].role is RECORD
        size = self._limits.max_record_bytes
        if self._text < 0 and record:
            raise _Rejected(
                GatewayError(Code.TOO_LARGE, f"record of more than {size} bytes of text")
            )
        if self._text < 0:
            raise self._limits.refuse(
                "resource_bytes", f"resource of more than {size} bytes of text"
            )
        if record:
            raise _Rejected(invalid(TOO_MANY))
        raise self._limits.refuse("resource_values", f"resource attributes: {TOO_MANY}")

    def _end_part(self) -> None:
        """The open part is read whole: a record is finished at once."""
        if self._stack[self._part].role is RECORD:
            records = self._stack[self._part - 1].value
            records[-1] = self._finish(records[-1])
        self._part = -1

    def _reject(self, error: GatewayError, started: bool) -> None:
        """The open record refused alone: `error` in its place, the rest of it skipped."""
        records = self._stack[self._part - 1].value
        records[-1] = error
        self._skip = len(self._stack) - self._part + int(started)
        del self._stack[self._part :]
        self._part = -1
