"""The OpenTelemetry Python SDK's own OTLP exporters publish to a real gateway, unmodified:
records logged through the standard `logging` module reach an SSE subscriber."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpExporter
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from tests.conftest import Running, running_gateway
from tests.sse_client import open_stream

ETL = "logs:etl:workspace123:workflow456"


class OtelLogging:
    """A `logging.Logger` whose records go through the SDK's batch processor and exporter."""

    def __init__(self, exporter: LogRecordExporter, name: str, **resource: Any) -> None:
        self.provider = LoggerProvider(
            resource=Resource.create({"service.name": "etl", **resource})
        )
        self.provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
        self.logger = logging.getLogger(name)
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.handler = LoggingHandler(logger_provider=self.provider)
        self.logger.addHandler(self.handler)

    async def flush(self) -> None:
        assert await asyncio.to_thread(self.provider.force_flush)

    async def close(self) -> None:
        self.logger.removeHandler(self.handler)
        await asyncio.to_thread(self.provider.shutdown)


def exporter(gw: Running, kind: str, token: str) -> LogRecordExporter:
    if kind == "grpc":
        return GrpcExporter(
            endpoint=gw.grpc_target, insecure=True, headers={"authorization": f"Bearer {token}"}
        )
    return HttpExporter(
        endpoint=f"{gw.http}/v1/logs",
        headers={"Authorization": f"Bearer {token}"},
        compression=Compression.Gzip if kind == "http-gzip" else Compression.NoCompression,
    )


@pytest.fixture
def tracer() -> Iterator[Any]:
    provider = TracerProvider()
    yield provider.get_tracer("test")
    provider.shutdown()


@pytest.mark.parametrize("kind", ["grpc", "http", "http-gzip"])
async def test_sdk_records_reach_a_subscriber_with_level_body_attributes_and_trace(
    gw: Running, kind: str, tracer: Any
) -> None:
    otel = OtelLogging(
        exporter(gw, kind, gw.token("etl", publish=[ETL])),
        f"otlp.{kind}",
        **{"logs_gateway.channel": ETL},
    )
    async with open_stream(gw.http, ETL, gw.token(subscribe=[ETL])) as stream:
        assert (await stream.next()).event == "ready"
        with tracer.start_as_current_span("load") as span:
            otel.logger.warning("slow step", extra={"rows": 12, "stage": "load"})
        try:
            raise ValueError("bad row")
        except ValueError:
            otel.logger.exception("step failed")
        otel.logger.debug("detail")
        await otel.flush()
        warn, error, debug = [e.data for e in await stream.take(3)]
    await otel.close()

    ids = span.get_span_context()
    assert warn["level"] == "warn" and warn["severity"] == 13
    assert (warn["message"], warn["source"], warn["channel"]) == ("slow step", "etl", ETL)
    assert warn["attributes"] == {"rows": 12, "stage": "load", "severity_text": "WARN"}
    assert (warn["trace_id"], warn["span_id"]) == (f"{ids.trace_id:032x}", f"{ids.span_id:016x}")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", warn["time"])
    assert error["level"] == "error" and error["message"] == "step failed"
    assert error["attributes"]["exception.type"] == "ValueError"
    assert "bad row" in error["attributes"]["exception.stacktrace"]
    assert "trace_id" not in error  # logged outside any span
    assert debug["level"] == "debug" and debug["message"] == "detail"


async def test_the_sdk_waits_the_retry_delay_it_is_given_then_its_records_land(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_gateway(publish_rate=10) as gw:
        token = gw.token("etl", publish=[ETL])
        channel = {"logs_gateway.channel": ETL}
        first = OtelLogging(exporter(gw, "grpc", token), "otlp.rate.first", **channel)
        for i in range(40):  # 30 entries in debt: three seconds to wait
            first.logger.info("burst %d", i)
        await first.flush()
        late = OtelLogging(exporter(gw, "grpc", token), "otlp.rate.late", **channel)
        async with open_stream(gw.http, ETL, gw.token(subscribe=[ETL])) as stream:
            assert (await stream.next()).event == "ready"
            late.logger.info("after the wait")
            await late.flush()
            (event,) = await stream.take(1, timeout=10)
        await first.close()
        await late.close()
    assert event.data["message"] == "after the wait"
    waits = [
        float(m[1])
        for r in caplog.records
        if (m := re.search(r"retrying in ([\d.]+)s", r.getMessage()))
    ]
    # The SDK's own first backoff would be about one second; it waited the gateway's ~3 s.
    assert waits and 2.5 <= waits[0] <= 3.1
