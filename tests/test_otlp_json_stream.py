"""otlp.json_stream: OTLP/JSON read a slice at a time, counted as it is built, into what
json_mapping reads (what orjson would parse, less the fields it never reads)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from gateway.api.otlp.json_stream import CHUNK, read_document
from gateway.api.otlp.limits import OtlpLimits
from gateway.core.errors import Code, GatewayError

LIMITS = OtlpLimits.of(1000, 65536)


def _kept(record: dict[str, Any]) -> dict[str, Any]:
    """Each record as built (json_mapping parses it there)."""
    return record


def _record(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "timeUnixNano": str(1_700_000_000_000_000_000 + i),
        "severityText": "WARN",
        "body": {"kvlistValue": {"values": [{"key": "a", "value": {"doubleValue": 1.5}}]}},
        "attributes": [{"key": "n", "value": {"intValue": i}}],
        "traceId": "ab" * 16,
        **extra,
    }


async def test_records_and_resources_are_built_as_orjson_parses_them() -> None:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "etl"}}]}
    doc = {
        "resourceLogs": [
            {"resource": resource, "scopeLogs": [{"logRecords": [_record(0), _record(1)]}]},
            {"resource": {}, "scope_logs": [{"log_records": [_record(2, futureField=[1, {}])]}]},
        ]
    }
    assert await read_document(orjson.dumps(doc), LIMITS, _kept) == doc


async def test_what_json_mapping_never_reads_is_left_out() -> None:
    doc = {
        "resourceLogs": [
            {
                "resource": {"attributes": [], "droppedAttributesCount": 3},
                "schemaUrl": "https://x",
                "scopeLogs": [
                    {"scope": {"name": "lib", "attributes": [{"key": "k"}]}, "logRecords": []}
                ],
            }
        ],
        "extra": {"a": [1, 2]},
    }
    built = await read_document(orjson.dumps(doc), LIMITS, _kept)
    assert built == {
        "resourceLogs": [
            {
                "resource": {"attributes": []},
                "scopeLogs": [{"scope": {"attributes": [None]}, "logRecords": []}],
            }
        ]
    }


async def test_a_record_past_the_attribute_limit_is_rejected_alone_as_it_is_read() -> None:
    wide = _record(1, attributes=[{"key": f"k{i}", "value": {"intValue": i}} for i in range(500)])
    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": [_record(0), wide, _record(2)]}]}]}
    records = (await read_document(orjson.dumps(doc), LIMITS, _kept))["resourceLogs"][0][
        "scopeLogs"
    ][0]["logRecords"]
    assert records[0] == _record(0) and records[2] == _record(2)
    assert isinstance(records[1], GatewayError)
    assert records[1].message == "more than 128 attributes"


async def test_a_record_past_its_bytes_of_text_is_rejected_alone_as_it_is_read() -> None:
    big = _record(1, body={"stringValue": "x" * (LIMITS.max_record_bytes + 1)})
    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": [_record(0), big]}]}]}
    built = await read_document(orjson.dumps(doc), LIMITS, _kept)
    [fits, refused] = built["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
    assert fits == _record(0)
    assert refused.code is Code.TOO_LARGE
    assert refused.message == f"record of more than {LIMITS.max_record_bytes} bytes of text"


async def test_each_record_is_finished_as_soon_as_it_is_read() -> None:
    finished: list[int] = []

    def finish(record: dict[str, Any]) -> int:
        finished.append(len(finished))
        return len(finished) - 1

    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": [_record(i) for i in range(3)]}]}]}
    built = await read_document(orjson.dumps(doc), LIMITS, finish)
    assert built["resourceLogs"][0]["scopeLogs"][0]["logRecords"] == [0, 1, 2]


async def test_a_long_string_across_many_chunks_is_read_whole() -> None:
    text = "é" * (20 * CHUNK)
    doc = {
        "resourceLogs": [{"scopeLogs": [{"logRecords": [_record(0, body={"stringValue": text})]}]}]
    }
    assert await read_document(orjson.dumps(doc), LIMITS, _kept) == doc


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"resourceLogs": [', "body is not valid JSON"),
        (b"", "body is not valid JSON"),
        (b'{"a": 1} {}', "body is not valid JSON"),
    ],
)
async def test_what_is_not_json_is_refused_naming_it(body: bytes, message: str) -> None:
    with pytest.raises(GatewayError) as refused:
        await read_document(body, LIMITS, _kept)
    assert refused.value.code is Code.INVALID_ARGUMENT
    assert message in refused.value.message


def _wide() -> dict[str, Any]:
    """1,000 records of 60 attributes (2.4 MB)."""
    attributes = [{"key": f"a{j}", "value": {"intValue": j}} for j in range(60)]
    records = [_record(i, attributes=attributes) for i in range(1000)]
    return {"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}


def _string_then_small_values() -> dict[str, Any]:
    """A 1 MB string, then a million small values: the chunk the string ends in was as
    long as the string (it doubled inside it), all its events built in one turn."""
    record = {"body": {"stringValue": "x" * 1_000_000}, "future": [[]] * 1_000_000}
    return {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}


@pytest.mark.parametrize("make", [_wide, _string_then_small_values])
async def test_the_loop_gets_turns_while_a_large_body_is_read(
    make: Callable[[], dict[str, Any]],
) -> None:
    doc = make()
    turns = 0

    async def count() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    counter = asyncio.create_task(count())
    built = await read_document(orjson.dumps(doc), LIMITS, _kept)
    counter.cancel()
    if make is _wide:
        assert built == doc
    else:  # past its bytes of text: refused alone, the rest of it read through
        [refused] = built["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
        assert refused.code is Code.TOO_LARGE
    assert turns >= 10  # slices of about 2 ms over at least 100 ms of reading
