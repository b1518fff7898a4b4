"""OTLP requests written by hand against a real gateway: OTLP/JSON, gzip, partial success,
credentials, rights, size and rate limits, draining; each answered as the OTLP spec says."""

from __future__ import annotations

import functools
import gc
import gzip
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from aiohttp import web
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as otlp_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import (
    SEVERITY_NUMBER_INFO,
    LogRecord,
    ResourceLogs,
    ScopeLogs,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from gateway.core import ingest
from gateway.core.ratelimit import RateLimiter
from tests.conftest import Running, running_gateway
from tests.sse_client import open_stream
from tests.test_metrics import scrape, value

ETL = "logs:etl:workspace123:workflow456"
PROTOBUF = "application/x-protobuf"
TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"


def kv(key: str, value: str | int) -> KeyValue:
    any_value = (
        AnyValue(string_value=value) if isinstance(value, str) else AnyValue(int_value=value)
    )
    return KeyValue(key=key, value=any_value)


def record(body: str = "m", channel: str | None = ETL, **attributes: str | int) -> LogRecord:
    pairs = [kv(k, v) for k, v in attributes.items()]
    if channel is not None:
        pairs.append(kv("logs_gateway.channel", channel))
    return LogRecord(
        body=AnyValue(string_value=body), severity_number=SEVERITY_NUMBER_INFO, attributes=pairs
    )


def otlp(*records: LogRecord, **resource: str) -> ExportLogsServiceRequest:
    attributes = [kv(k, v) for k, v in resource.items()]
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=attributes),
                scope_logs=[ScopeLogs(log_records=records)],
            )
        ]
    )


async def post(
    gw: Running, body: bytes, token: str | None, content_type: str = PROTOBUF, **headers: str
) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{gw.http}/v1/logs", content=body, headers={"Content-Type": content_type, **headers}
        )


async def export(gw: Running, request: ExportLogsServiceRequest, token: str) -> Any:
    async with grpc.aio.insecure_channel(gw.grpc_target) as channel:
        stub = otlp_grpc.LogsServiceStub(channel)
        return await stub.Export(request, metadata=[("authorization", f"Bearer {token}")])


def status_of(response: httpx.Response) -> Status:
    assert response.headers["content-type"] == PROTOBUF
    return Status.FromString(response.content)


def retry_delay(status: Status) -> float:
    (detail,) = status.details
    info = RetryInfo()
    assert detail.Unpack(info)
    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9


@pytest.fixture
async def stream(gw: Running) -> AsyncIterator[Any]:
    async with open_stream(gw.http, "logs:>", gw.token(subscribe=["logs:>"])) as s:
        assert (await s.next()).event == "ready"
        yield s


async def test_otlp_json_by_hand(gw: Running, stream: Any) -> None:
    body = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "etl"}}]
                },
                "scopeLogs": [
                    {
                        "scope": {"name": "by-hand"},
                        "logRecords": [
                            {
                                "timeUnixNano": "1795744279043427123",
                                "severityNumber": "SEVERITY_NUMBER_WARN",
                                "severityText": "Warning",
                                "body": {"stringValue": "slow step"},
                                "traceId": TRACE,
                                "spanId": SPAN,
                                "attributes": [
                                    {"key": "logs_gateway.channel", "value": {"stringValue": ETL}},
                                    {"key": "rows", "value": {"intValue": "12"}},
                                    {"key": "ratio", "value": {"doubleValue": 0.5}},
                                    {
                                        "key": "tags",
                                        "value": {
                                            "arrayValue": {
                                                "values": [{"stringValue": "a"}, {"intValue": "2"}]
                                            }
                                        },
                                    },
                                ],
                                "aFieldFromTheFuture": True,
                            },
                            {
                                "observedTimeUnixNano": 1795744279000000001,
                                "severityNumber": 17,
                                "body": {
                                    "kvlistValue": {
                                        "values": [
                                            {"key": "step", "value": {"stringValue": "load"}}
                                        ]
                                    }
                                },
                                "attributes": [
                                    {"key": "logs_gateway.channel", "value": {"stringValue": ETL}}
                                ],
                            },
                        ],
                    }
                ],
            }
        ]
    }
    response = await post(
        gw, json.dumps(body).encode(), gw.token("etl", publish=[ETL]), "application/json"
    )
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == {}  # full success: no partial_success
    warn, error = [e.data for e in await stream.take(2)]
    assert warn == {
        "channel": ETL,
        "offset": 0,
        "time": "2026-11-27T01:51:19.043427123Z",
        "level": "warn",
        "severity": 13,
        "message": "slow step",
        "source": "etl",
        "attributes": {"rows": 12, "ratio": 0.5, "tags": '["a",2]', "severity_text": "Warning"},
        "trace_id": TRACE,
        "span_id": SPAN,
    }
    assert (error["level"], error["message"]) == ("error", '{"step":"load"}')
    assert error["time"] == "2026-11-27T01:51:19.000000001Z"  # the observed time, exact


async def test_otlp_json_that_does_not_parse_is_refused_in_json(gw: Running) -> None:
    token = gw.token("etl", publish=[ETL])
    bad_id = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "not-hex"}]}]}]}
    for body, problem in [
        (b"{", "not valid JSON"),
        (json.dumps(bad_id).encode(), "traceId 'not-hex' is not hex"),
        (b'{"resourceLogs": 7}', "not an OTLP/JSON logs request"),
    ]:
        response = await post(gw, body, token, "application/json")
        assert (
            response.status_code == 400 and response.headers["content-type"] == "application/json"
        )
        assert response.json()["code"] == 3 and problem in response.json()["message"]


@pytest.mark.parametrize("over", ["http", "grpc"])
async def test_bad_records_are_rejected_alone_with_the_first_problem_named(
    gw: Running, stream: Any, over: str
) -> None:
    bad_trace = record("bad trace")
    bad_trace.trace_id = b"\x01" * 15
    request = otlp(
        record("kept"),
        record("no channel", channel=None),
        record("next door", channel="logs:billing:workspace123:x"),
        record(" "),
        bad_trace,
        record("bad channel", channel="logs:etl"),
        **{"service.name": "etl"},
    )
    token = gw.token("etl", publish=["logs:etl:workspace123:>"])
    if over == "http":
        http = await post(gw, request.SerializeToString(), token)
        assert http.status_code == 200 and http.headers["content-type"] == PROTOBUF
        response = ExportLogsServiceResponse.FromString(http.content)
    else:
        response = await export(gw, request, token)
    partial = response.partial_success
    assert partial.rejected_log_records == 5
    assert partial.error_message == (
        "5 of 6 log records rejected; first: entry 1: no channel: set the attribute "
        "'logs_gateway.channel' on the record or its resource, or start the gateway with "
        "--otlp-channel-template"
    )
    (kept,) = await stream.take(1)
    assert kept.data["message"] == "kept" and kept.data["source"] == "etl"
    samples = await scrape(gw)
    assert (
        value(samples, "logs_gateway_entries_received_total", service="etl", outcome="stored") == 1
    )
    refused = {
        labels: n
        for (name, labels), n in samples.items()
        if name == "logs_gateway_entries_received_total" and ("outcome", "stored") not in labels
    }
    assert sum(refused.values()) == 5
    assert refused[("outcome", "permission_denied"), ("service", "other")] == 1


async def test_each_rejection_names_its_problem(gw: Running) -> None:
    token = gw.token("etl", publish=[ETL])
    bad_trace = record("bad trace")
    bad_trace.trace_id = b"\x01" * 15
    cases = {
        "next door": (record(channel="logs:billing:w:x"), "may not publish to 'logs:billing:w:x'"),
        "empty": (record(" "), "message is empty"),
        "trace": (bad_trace, "trace_id is 15 bytes; it must be 16, or empty"),
        "channel": (record(channel="logs:etl"), "needs at least logs:{service}:{workspace}"),
    }
    for name, (rec, problem) in cases.items():
        response = await export(gw, otlp(rec), token)
        assert response.partial_success.rejected_log_records == 1, name
        assert problem in response.partial_success.error_message, name


async def test_the_channel_template_fills_in_from_record_then_resource_attributes() -> None:
    template = "logs:{service.name}:{workspace.id}"
    async with (
        running_gateway(otlp_channel_template=template) as gw,
        open_stream(gw.http, "logs:>", gw.token(subscribe=["logs:>"])) as stream,
    ):
        assert (await stream.next()).event == "ready"
        request = otlp(
            record("from the template", channel=None, **{"workspace.id": "ws1"}),
            record("explicit wins", **{"workspace.id": "ws1"}),
            record("no workspace", channel=None),
            record("two segments", channel=None, **{"workspace.id": "ws1:extra"}),
            **{"service.name": "etl"},
        )
        response = await export(gw, request, gw.token("etl", publish=["logs:etl:>"]))
        templated, explicit = [e.data for e in await stream.take(2)]
    assert (templated["channel"], templated["message"]) == ("logs:etl:ws1", "from the template")
    assert (explicit["channel"], explicit["message"]) == (ETL, "explicit wins")
    assert "logs_gateway.channel" not in explicit["attributes"]
    assert response.partial_success.rejected_log_records == 2
    assert "entry 2: no attribute 'workspace.id' for the channel template" in (
        response.partial_success.error_message
    )


async def test_a_bad_token_is_unauthenticated_and_stores_nothing(gw: Running) -> None:
    body = otlp(record()).SerializeToString()
    for token in (
        None,
        "not-a-jwt",
        gw.signer.mint("etl", publish=[ETL], extra={"exp": int(time.time()) - 120}),
    ):
        response = await post(gw, body, token)
        assert response.status_code == 401 and status_of(response).code == 16
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await export(gw, otlp(record()), "not-a-jwt")
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert gw.gateway is not None and gw.gateway.ingest.counts.total("stored") == 0


async def test_over_the_publish_rate_the_retry_delay_is_given_as_otlp_clients_read_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rate limiter reads a clock the test moves (RateLimiter's `clock`), so the delay
    is exact however long the requests take on a loaded machine."""
    now = [1000.0]
    monkeypatch.setattr(ingest, "RateLimiter", functools.partial(RateLimiter, clock=lambda: now[0]))
    async with running_gateway(publish_rate=10) as gw:
        token = gw.token("etl", publish=[ETL])
        burst = await export(gw, otlp(*[record(f"m{i}") for i in range(40)]), token)
        assert not burst.HasField("partial_success")  # stored; 30 entries in debt: wait 3 s
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await export(gw, otlp(record("late")), token)
        assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        trailers = dict(err.value.trailing_metadata() or ())
        details = Status.FromString(trailers["grpc-status-details-bin"])
        assert details.code == 8 and "publish rate" in details.message
        assert retry_delay(details) == 3.1  # 31 entries short at 10/s
        alone = RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
        assert alone.retry_delay.ToTimedelta().total_seconds() == 3.1
        late = otlp(record("late")).SerializeToString()
        over_http = await post(gw, late, token)
        assert over_http.status_code == 429 and over_http.headers["Retry-After"] == "4"
        assert retry_delay(status_of(over_http)) == 3.1
        now[0] += 3.0  # not yet: 1 entry short
        assert retry_delay(status_of(await post(gw, late, token))) == pytest.approx(0.1)
        now[0] += 0.1  # the delay given has passed: the retry is taken
        assert (await export(gw, otlp(record("on time")), token)) == ExportLogsServiceResponse()


async def test_size_limits_refuse_the_request_or_the_record() -> None:
    async with running_gateway(
        max_message_bytes=64 * 1024, max_entry_bytes=1024, max_batch_entries=10
    ) as gw:
        token = gw.token("etl", publish=[ETL])
        big = otlp(record("x" * 70_000)).SerializeToString()
        response = await post(gw, big, token)
        assert (
            response.status_code == 413 and "larger than 65536 bytes" in status_of(response).message
        )
        bomb = gzip.compress(otlp(*[record("y" * 1000) for _ in range(100)]).SerializeToString())
        assert len(bomb) < 64 * 1024
        response = await post(gw, bomb, token, **{"Content-Encoding": "gzip"})
        assert response.status_code == 413  # the limit counts inflated bytes
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await export(gw, otlp(record("x" * 70_000)), token)
        assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        one_large = await export(gw, otlp(record("fits"), record("z" * 2000)), token)
        assert one_large.partial_success.rejected_log_records == 1
        assert (
            "entry 1: entry is 2002 bytes; at most 1024" in one_large.partial_success.error_message
        )
        # Records are counted before any is read: one too many refuses the request whole.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await export(gw, otlp(*[record() for _ in range(11)]), token)
        assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert err.value.details() == "more than 10 log records (--max-batch-entries)"


async def test_gzip_bodies_are_inflated(gw: Running, stream: Any) -> None:
    body = gzip.compress(otlp(record("zipped")).SerializeToString())
    response = await post(gw, body, gw.token("etl", publish=[ETL]), **{"Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert ExportLogsServiceResponse.FromString(response.content) == ExportLogsServiceResponse()
    assert (await stream.take(1))[0].data["message"] == "zipped"


async def test_bodies_that_are_not_otlp_are_refused(gw: Running) -> None:
    token = gw.token("etl", publish=[ETL])
    for body, content_type, problem in [
        (b"\xff\xff\xff", PROTOBUF, "not an OTLP protobuf logs request"),
        (b"a=b", "application/x-www-form-urlencoded", "Content-Type must be"),
    ]:
        response = await post(gw, body, token, content_type)
        assert response.status_code == 400 and problem in status_of(response).message


async def test_a_draining_gateway_asks_exporters_to_come_back() -> None:
    async with running_gateway() as gw:
        assert gw.gateway is not None
        token = gw.token("etl", publish=[ETL])
        # The drain's first step (Gateway.stop sets it, then waits for publish streams):
        # from here until the servers close, OTLP requests are refused, to be resent.
        gw.gateway.stopping.set()
        response = await post(gw, otlp(record()).SerializeToString(), token)
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert retry_delay(status_of(response)) == 1.0
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await export(gw, otlp(record()), token)
        assert err.value.code() is grpc.StatusCode.UNAVAILABLE
        trailers = dict(err.value.trailing_metadata() or ())
        assert RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]).retry_delay.seconds == 1
        assert gw.gateway.ingest.counts.total("stored") == 0


async def test_a_refused_request_is_not_kept_alive_after_its_answer() -> None:
    """The drain's refusal was one module-level error, raised again for each request: its
    traceback's frames held the last refused request (and all it referenced) until the
    next one (seen as a `POST /v1/logs` request alive in a later test)."""
    async with running_gateway() as gw:
        assert gw.gateway is not None
        gw.gateway.stopping.set()
        token = gw.token("etl", publish=[ETL])
        assert (await post(gw, otlp(record()).SerializeToString(), token)).status_code == 503
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, web.BaseRequest)]
