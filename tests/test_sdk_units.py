"""The SDK's pure parts, without a server: SSE parsing, entry building, token timing,
error mapping, the bounded buffer, backoff and the tail's output."""

from __future__ import annotations

import base64
import json

import pytest
from logs_gateway import EntryTooLarge, InvalidArgument, LogsGatewayError, PermissionDenied
from logs_gateway.backoff import Backoff
from logs_gateway.buffer import Buffer
from logs_gateway.entries import make_entry, severity
from logs_gateway.errors import error_for
from logs_gateway.sse import Parser, ServerEvent
from logs_gateway.tail import format_entry
from logs_gateway.tokens import fetch_token, refresh_in


def feed(parser: Parser, text: str) -> list[ServerEvent]:
    events = [parser.feed(line) for line in text.split("\n")]
    return [e for e in events if e is not None]


def test_sse_parser_follows_the_spec() -> None:
    parser = Parser()
    stream = (
        "retry: 3000\nid: c-1\nevent: ready\ndata: {}\n\n"
        ": ping\n\n"
        'id: c-2\nevent: log\ndata:{"a":1}\n\n'
        "data: line one\ndata: line two\n\n"
    )
    assert feed(parser, stream) == [
        ServerEvent("ready", "{}", "c-1"),
        ServerEvent("log", '{"a":1}', "c-2"),
        ServerEvent("message", "line one\nline two", "c-2"),  # the id carries over
    ]


def test_make_entry_types_attributes_and_levels() -> None:
    entry = make_entry(
        "logs:a:b",
        "hi",
        level="warning",
        attributes={"n": 3, "ok": True, "x": 1.5, "s": "v", "obj": [1]},
        time_ns=7,
    )
    assert (entry.severity_number, entry.time_unix_nano) == (13, 7)
    kinds = {k: v.WhichOneof("value") for k, v in entry.attributes.items()}
    assert kinds == {
        "n": "int_value",
        "ok": "bool_value",
        "x": "double_value",
        "s": "string_value",
        "obj": "string_value",
    }
    assert make_entry("logs:a:b", "now").time_unix_nano > 0
    assert [severity(x) for x in ("trace", "DEBUG", "critical", 24)] == [1, 5, 21, 24]
    with pytest.raises(ValueError, match="unknown level 'loud'"):
        severity("loud")


def jwt(claims: dict[str, object]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"e30.{payload}.sig"


def test_refresh_comes_before_expiry() -> None:
    assert refresh_in(jwt({"iat": 1000, "exp": 4600}), now=1000) == 3570  # 30 s early
    assert refresh_in(jwt({"iat": 1000, "exp": 1010}), now=1000) == 8  # a fifth early
    assert refresh_in(jwt({"exp": 900}), now=1000) == 0
    assert refresh_in("opaque-token") is None
    assert refresh_in(jwt({"sub": "x"})) is None


async def test_token_sources() -> None:
    async def fresh() -> str:
        return "async-token"

    assert await fetch_token(" plain ") == "plain"
    assert await fetch_token(lambda: "sync-token") == "sync-token"
    assert await fetch_token(fresh) == "async-token"
    with pytest.raises(ValueError, match="no token"):
        await fetch_token(lambda: "")


def test_errors_map_codes_to_types_and_name_the_channel() -> None:
    entry = make_entry("logs:etl:ws:wf", "m")
    denied = error_for(7, "entry 0: may not publish", entry)
    assert isinstance(denied, PermissionDenied)
    assert str(denied) == "entry 0: may not publish (channel 'logs:etl:ws:wf')"
    assert isinstance(error_for(3, "bad"), InvalidArgument)
    assert isinstance(error_for(8, "big"), EntryTooLarge)
    other = error_for(13, "internal")
    assert type(other) is LogsGatewayError and other.code == 13


def test_buffer_bounds_and_batches() -> None:
    buffer = Buffer(capacity=3)
    entries = [make_entry("logs:a:b", str(i)) for i in range(4)]
    assert [buffer.offer(e, 100) for e in entries] == [True, True, True, False]
    assert [e.body for e in buffer.take(max_entries=10, max_bytes=250)] == ["0", "1"]
    assert [e.body for e in buffer.take(max_entries=10, max_bytes=10)] == ["2"]  # at least one
    assert (buffer.held, buffer.waiting) == (3, 0)  # taken, not yet acknowledged
    buffer.settle(2)
    assert buffer.offer(entries[3], 100)
    assert (buffer.held, buffer.accepted, buffer.settled) == (2, 4, 2)


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    backoff = Backoff(cap=1.0)
    delays = [backoff.next() for _ in range(10)]
    assert 0.025 <= delays[0] <= 0.05
    assert all(0.5 <= d <= 1.0 for d in delays[6:])
    backoff.reset()
    assert backoff.next() <= 0.05


def test_tail_formats_one_line_per_entry_with_stack_traces_below() -> None:
    data = {
        "channel": "logs:etl:ws:wf",
        "time": "2026-11-27T01:51:19.043427Z",
        "level": "warn",
        "message": "slow step",
        "source": "etl",
        "attributes": {"rows": 12, "stage": "load", "note": "two words", "exception": "a\nb"},
    }
    plain = format_entry(data, color=False)
    assert plain == (
        '01:51:19.043 WARN  logs:etl:ws:wf [etl] slow step rows=12 stage=load note="two words"\n'
        "    exception:\n      a\n      b"
    )
    assert format_entry(data, color=True).startswith("01:51:19.043 \x1b[33mWARN \x1b[0m ")
