"""The SDK's pure parts, without a server: SSE parsing, entry building, token timing,
error mapping, the bounded buffer, the batcher, strict ack matching, the retry table,
backoff and the tail's output."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import grpc
import pytest
from logs_gateway import (
    EntryTooLarge,
    InvalidArgument,
    LogsGatewayError,
    Options,
    PermissionDenied,
    ProtocolError,
)
from logs_gateway.backoff import Backoff
from logs_gateway.batcher import Batcher
from logs_gateway.buffer import Buffer
from logs_gateway.connection import Connection
from logs_gateway.entries import make_entry, severity
from logs_gateway.errors import error_for
from logs_gateway.retry import Step, step_for
from logs_gateway.sse import Parser, ServerEvent
from logs_gateway.tail import format_entry
from logs_gateway.tokens import fetch_token, refresh_in
from logs_gateway.v1 import logs_pb2 as pb

from tests.conftest import free_port


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


def batcher(**options: Any) -> Batcher:
    return Batcher("p", Options(**options), Buffer(capacity=100))


def test_batcher_numbers_batches_and_sends_them_when_due() -> None:
    b = batcher(batch_size=3, linger=0.5, max_in_flight=2)
    assert b.wait(now=0, in_flight=0, urgent=False) == math.inf  # nothing waits
    b.buffer.offer(make_entry("logs:a:b", "0"), 10)
    first_at = b.buffer.first_at
    assert b.wait(first_at, in_flight=0, urgent=False) == 0.5  # lingers for more
    assert b.wait(first_at, in_flight=0, urgent=True) == 0  # flush or close: now
    for i in (1, 2):
        b.buffer.offer(make_entry("logs:a:b", str(i)), 10)
    assert b.wait(first_at, in_flight=0, urgent=False) == 0  # full
    assert b.wait(first_at, in_flight=2, urgent=True) == math.inf  # max_in_flight
    batch = b.take()
    assert (batch.sequence, batch.request.producer_id, len(batch.entries)) == (1, "p", 3)
    assert list(b.unacked) == [1]
    assert b.answered(1) is batch and not b.unacked


def test_batcher_splits_a_batch_over_the_message_limit_in_place() -> None:
    b = batcher(batch_size=10, max_in_flight=8)
    for i in range(5):
        b.buffer.offer(make_entry("logs:a:b", f"entry {i}"), 10)
    big = b.take()
    b.buffer.offer(make_entry("logs:a:b", "later"), 10)
    after = b.take()
    b.refused_as_too_large()  # which one is unknown: one at a time from now on
    assert b.suspects == {1, 2} and b.in_flight_limit == 1
    halves = b.split(big)
    assert [h.sequence for h in halves] == [3, 4]  # new keys: the refused one was not stored
    assert [[e.body for e in h.entries] for h in halves] == [
        ["entry 0", "entry 1"],
        ["entry 2", "entry 3", "entry 4"],
    ]
    assert list(b.unacked) == [3, 4, 2]  # the resend order keeps the entries' order
    assert b.max_bytes == big.request.ByteSize() // 2  # later batches: at most half
    for batch in (*halves, after):
        b.answered(batch.sequence)
    assert not b.suspects and b.in_flight_limit == 8
    b.buffer.offer(make_entry("logs:a:b", "x"), 10)
    b.drop(b.take())
    assert b.abandon() == 0


async def test_connection_matches_acks_strictly() -> None:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}")  # nothing is sent
    try:
        b = batcher()
        for i in range(2):
            b.buffer.offer(make_entry("logs:a:b", str(i)), 10)
        batch = b.take()
        connection = Connection(channel, "token")
        connection.in_flight.append(batch)
        ok = pb.EntryResult(offset=1)
        with pytest.raises(ProtocolError, match="1 results for 2 entries"):
            connection.match(pb.PublishAck(sequence=1, results=[ok]))
        with pytest.raises(ProtocolError, match="batch 1 was next"):
            connection.match(pb.PublishAck(sequence=7, results=[ok, ok]))
        assert not connection.accepted  # nothing of it counted
        answer = connection.match(pb.PublishAck(sequence=1, results=[ok, ok], duplicate=True))
        assert (answer.batch, answer.duplicate, connection.accepted) == (batch, True, True)
        with pytest.raises(ProtocolError, match="no batch in flight"):
            connection.match(pb.PublishAck(sequence=2))
        connection.cancel()
    finally:
        await channel.close()


@pytest.mark.parametrize(
    ("code", "retry_after", "write_failed", "step"),
    [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 0.2, False, Step.WAIT_HINT),  # rate limited
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 0.0, False, Step.SPLIT),  # message too large
        (grpc.StatusCode.UNAVAILABLE, 0.0, False, Step.RECONNECT),  # unreachable, draining
        (grpc.StatusCode.CANCELLED, 0.0, False, Step.RECONNECT),  # a gateway past its grace
        (grpc.StatusCode.DEADLINE_EXCEEDED, 0.0, False, Step.RECONNECT),  # outcome unknown
        (grpc.StatusCode.UNAUTHENTICATED, 0.0, False, Step.REFRESH),
        (grpc.StatusCode.INVALID_ARGUMENT, 0.0, False, Step.FAIL),
        (grpc.StatusCode.PERMISSION_DENIED, 0.0, False, Step.FAIL),
        (grpc.StatusCode.INTERNAL, 0.0, False, Step.FAIL),  # the gateway's own INTERNAL
        (grpc.StatusCode.INTERNAL, 0.0, True, Step.RECONNECT),  # grpc/grpc#36066
        (grpc.StatusCode.UNKNOWN, 0.0, False, Step.FAIL),
    ],
)
def test_the_retry_table_retries_only_what_can_succeed(
    code: grpc.StatusCode, retry_after: float, write_failed: bool, step: Step
) -> None:
    assert step_for(code, retry_after, write_failed) is step
