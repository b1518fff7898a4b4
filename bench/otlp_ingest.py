"""OTLP ingest against LogIngest.Publish, on one gateway in one run: records/s at batches.

    .venv/bin/python -m bench.otlp_ingest [--seconds 5] [--batch 100]

Starts a gateway (bench.servers: pinned to the server core, publish rate lifted), then for
each protocol sends batches of `--batch` records from pre-encoded bytes, a few in flight,
for `--seconds`, and prints acked records/s and OTLP's share of Publish's. OTLP is unary
(one Export per batch); Publish is one stream of batches, as the SDK sends them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import time

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from bench import entries as wire
from bench import servers
from bench.publish_load import GrpcPublisher
from gateway.core.tokens import Signer

CHANNEL = "logs:bench:workspace1:otlp"
EXPORT_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
IN_FLIGHT = 4


def otlp_request(batch: int) -> bytes:
    """One Export request: `batch` records as the SDK's logging handler sends them."""
    message = wire.message(time.time_ns()).decode()
    records = [
        LogRecord(
            time_unix_nano=time.time_ns(),
            severity_number=9,  # type: ignore[arg-type]
            severity_text="INFO",
            body=AnyValue(string_value=message),
            attributes=[
                KeyValue(key="logs_gateway.channel", value=AnyValue(string_value=CHANNEL)),
                KeyValue(key="i", value=AnyValue(int_value=i)),
            ],
            trace_id=secrets.token_bytes(16),
            span_id=secrets.token_bytes(8),
        )
        for i in range(batch)
    ]
    service = KeyValue(key="service.name", value=AnyValue(string_value="bench"))
    resource = ResourceLogs(
        resource=Resource(attributes=[service]), scope_logs=[ScopeLogs(log_records=records)]
    )
    return ExportLogsServiceRequest(resource_logs=[resource]).SerializeToString()


async def otlp_rate(target: str, token: str, batch: int, seconds: float) -> float:
    body = otlp_request(batch)
    async with grpc.aio.insecure_channel(target) as channel:
        export = channel.unary_unary(EXPORT_METHOD)  # raw bytes both ways
        metadata = (("authorization", f"Bearer {token}"),)
        deadline = time.perf_counter() + seconds
        acked = 0

        async def sender() -> None:
            nonlocal acked
            while time.perf_counter() < deadline:
                answer = ExportLogsServiceResponse.FromString(await export(body, metadata=metadata))
                acked += batch - answer.partial_success.rejected_log_records

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(IN_FLIGHT)))
        return acked / (time.perf_counter() - started)


async def publish_rate(target: str, token: str, batch: int, seconds: float) -> float:
    entries = wire.GrpcEntries(CHANNEL)
    publisher = GrpcPublisher(target, token, "bench-otlp", IN_FLIGHT)
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        now = time.time_ns()
        await publisher.send([entries.entry(now) for _ in range(batch)])
    await publisher.close(10)
    assert publisher.acks.errors == 0, publisher.acks
    return publisher.acks.entries / (time.perf_counter() - started)


async def measure(target: str, token: str, batch: int, seconds: float) -> tuple[float, float]:
    await publish_rate(target, token, batch, 0.5)  # warm both paths up
    await otlp_rate(target, token, batch, 0.5)
    return (
        await publish_rate(target, token, batch, seconds),
        await otlp_rate(target, token, batch, seconds),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, set(servers.LOAD_CORES))
    secret = secrets.token_hex(32)
    token = Signer(secret=secret.encode(), issuer="logs-gateway", audience="logs-gateway").mint(
        "bench", publish=[CHANNEL], ttl=600
    )
    with servers.gateway(secret) as gateway:
        target = f"{servers.HOST}:{gateway.grpc_port}"
        publish, otlp = asyncio.run(measure(target, token, args.batch, args.seconds))
    print(f"LogIngest.Publish b{args.batch}: {publish:,.0f} records/s")
    print(f"OTLP Export b{args.batch}:       {otlp:,.0f} records/s")
    print(f"OTLP / Publish: {otlp / publish:.0%}")


if __name__ == "__main__":
    main()
