"""gRPC operations on a real process: standard health (NOT_SERVING on drain) and reflection,
as grpc_health_probe, Kubernetes gRPC probes and grpcurl use them."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from tests.conftest import Running, gateway_process

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
OUR_SERVICES = (
    "logs_gateway.v1.LogIngest",
    "logs_gateway.v1.LogStream",
    "opentelemetry.proto.collector.logs.v1.LogsService",
)


def test_health_is_serving_then_not_serving_while_draining() -> None:
    with gateway_process() as run, grpc.insecure_channel(run.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", *OUR_SERVICES):
            request = health_pb2.HealthCheckRequest(service=service)
            assert health.Check(request, timeout=5).status == SERVING
        # An open Watch stream keeps the drain busy and sees the change as it happens.
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
        assert next(watch).status == SERVING
        assert run.process is not None
        run.process.send_signal(signal.SIGTERM)
        assert next(watch).status == NOT_SERVING
        assert run.process.poll() is None  # still draining, not gone
        watch.cancel()
        assert run.process.wait(timeout=15) == 0


def test_reflection_lists_and_describes_the_services(gw_process: Running) -> None:
    with grpc.insecure_channel(gw_process.grpc_target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert set(database.get_services()) == {
            *OUR_SERVICES,
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
            "grpc.reflection.v1.ServerReflection",
        }
        pool = DescriptorPool(database)
        publish = pool.FindServiceByName("logs_gateway.v1.LogIngest").FindMethodByName("Publish")
        assert publish.client_streaming
        assert publish.server_streaming
        assert publish.input_type.full_name == "logs_gateway.v1.PublishRequest"
        subscribe = pool.FindServiceByName("logs_gateway.v1.LogStream").methods_by_name["Subscribe"]
        assert subscribe.server_streaming
        assert not subscribe.client_streaming
        assert subscribe.output_type.full_name == "logs_gateway.v1.LogEvent"
        otlp = pool.FindServiceByName("opentelemetry.proto.collector.logs.v1.LogsService")
        export = otlp.methods_by_name["Export"]
        assert not export.client_streaming and not export.server_streaming


@pytest.mark.parametrize("protocol", ["grpc-v1", "grpc-v1alpha"])
def test_a_reflection_client_of_either_version_describes_the_services(
    gw_process: Running, protocol: str
) -> None:
    """`buf curl` (as grpcurl and Postman) asks for grpc.reflection.v1; older tools v1alpha."""
    buf = shutil.which("buf", path=str(Path(sys.executable).parent)) or "buf"
    url = f"http://{gw_process.grpc_target}"
    common = [buf, "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--reflect-protocol"]
    listed = subprocess.run(
        [*common, protocol, "--list-methods", url], capture_output=True, text=True, timeout=30
    )
    assert listed.returncode == 0, listed.stderr
    assert "logs_gateway.v1.LogIngest/Publish" in listed.stdout.split()
    assert "grpc.reflection.v1.ServerReflection/ServerReflectionInfo" in listed.stdout.split()
