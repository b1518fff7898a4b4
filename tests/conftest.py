"""Shared test helpers: real gateways on free ports, real signed tokens, real clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

from gateway.app import config as cfg
from gateway.app.server import Gateway
from gateway.core.keys import PublicKey
from gateway.core.tokens import Signer, Verifier

SECRET = "test-secret-" + "x" * 40
ISSUER = AUDIENCE = "logs-gateway"
# The private redis-server and nats-server fixtures (tests/redis_server.py,
# tests/nats_cluster.py) for the broker tests.
pytest_plugins = ["tests.redis_server", "tests.nats_cluster"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def signer() -> Signer:
    return Signer(secret=SECRET.encode(), issuer=ISSUER, audience=AUDIENCE)


def make_config(**overrides: Any) -> cfg.Config:
    """A test configuration: test secret, free ports, short timings."""
    base = cfg.load(env={})
    values: dict[str, Any] = {
        "jwt_secret": SECRET,
        "http_port": 0,
        "grpc_port": 0,
        "heartbeat_seconds": 15.0,
        "grace_seconds": 5.0,
        "dev": True,
    }
    values.update(overrides)
    return replace(base, **values)


def make_verifier(
    secret: bytes | None = SECRET.encode(),
    public_keys: Mapping[str, PublicKey] | None = None,
    **options: Any,
) -> Verifier:
    """A verifier of the test issuer's tokens, with the settings' defaults for the rest."""
    defaults = cfg.Config()
    settings = {"leeway": defaults.jwt_leeway, "cache_entries": defaults.token_cache_entries}
    return Verifier(
        secret=secret,
        public_keys=public_keys or {},
        issuer=ISSUER,
        audience=AUDIENCE,
        **(settings | options),
    )


@dataclass
class Running:
    """A gateway under test and ready-made clients for it."""

    http: str
    grpc_target: str
    signer: Signer
    gateway: Gateway | None = None
    process: subprocess.Popen[bytes] | None = None
    output: Path | None = None  # a process's folder holding its `stdout` and `stderr`
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def token(self, subject: str = "tester", **rights: Any) -> str:
        return self.signer.mint(subject, **rights)

    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def ingest(self, token: str) -> tuple[pb_grpc.LogIngestStub, list[tuple[str, str]]]:
        channel = grpc.aio.insecure_channel(self.grpc_target)
        self.channels.append(channel)
        return pb_grpc.LogIngestStub(channel), [("authorization", f"Bearer {token}")]

    async def publish(
        self, token: str, batches: list[list[pb.LogEntry]], producer: str = "p1", first_seq: int = 1
    ) -> list[pb.PublishAck]:
        """Publish batches on one stream; return the acks, or raise the server's status as
        AioRpcError.

        Uses the synchronous gRPC API in a thread: a grpc.aio client whose write races the
        server's refusal can see INTERNAL instead of the server's status (grpc/grpc#36066).
        """
        requests = [
            pb.PublishRequest(producer_id=producer, sequence=first_seq + i, entries=b)
            for i, b in enumerate(batches)
        ]
        return await asyncio.to_thread(self._publish_sync, token, requests)

    def _publish_sync(self, token: str, requests: list[pb.PublishRequest]) -> list[pb.PublishAck]:
        metadata = [("authorization", f"Bearer {token}")]
        with grpc.insecure_channel(self.grpc_target) as channel:
            try:
                return list(
                    pb_grpc.LogIngestStub(channel).Publish(iter(requests), metadata=metadata)
                )
            except grpc.RpcError as e:
                raise grpc.aio.AioRpcError(
                    e.code(),
                    grpc.aio.Metadata(),
                    grpc.aio.Metadata(*(e.trailing_metadata() or ())),
                    e.details(),
                ) from None

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()


def entry(channel: str, message: str, level: int = 9, **attributes: Any) -> pb.LogEntry:
    values = {
        k: pb.AttributeValue(string_value=v)
        if isinstance(v, str)
        else pb.AttributeValue(int_value=v)
        for k, v in attributes.items()
    }
    return pb.LogEntry(channel=channel, body=message, severity_number=level, attributes=values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running_gateway(**overrides: Any) -> AsyncIterator[Running]:
    """A Gateway in this test's event loop, on free ports."""
    config = make_config(**overrides)
    gateway = Gateway(config)
    ports = await gateway.start()
    run = Running(
        http=f"http://127.0.0.1:{ports.http}",
        grpc_target=f"127.0.0.1:{ports.grpc}",
        signer=Signer(secret=SECRET.encode(), issuer=ISSUER, audience=AUDIENCE),
        gateway=gateway,
    )
    try:
        yield run
    finally:
        await run.close()
        await gateway.stop()


@pytest.fixture
async def gw() -> AsyncIterator[Running]:
    async with running_gateway() as run:
        yield run


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"gateway at {url} did not become healthy")
        time.sleep(0.05)


@contextlib.contextmanager
def gateway_process(
    *extra: str, env: dict[str, str] | None = None, ports: tuple[int, int] | None = None
) -> Iterator[Running]:
    """A real `logs-gateway serve` process on free ports (or the given (http, grpc) ports,
    to restart a gateway where it was); SIGTERM and wait on exit."""
    http_port, grpc_port = ports or (free_port(), free_port())
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(cfg.ENV_PREFIX)} | {
        "LOGS_GATEWAY_JWT_SECRET": SECRET,
        "LOGS_GATEWAY_GRACE_SECONDS": "5",
    }
    full_env |= env or {}
    command = [sys.executable, "-m", "gateway", "serve"]
    command += ["--http-port", str(http_port), "--grpc-port", str(grpc_port), *extra]
    logs = Path(tempfile.mkdtemp(prefix="logs-gateway-"))
    with (logs / "stdout").open("wb") as stdout, (logs / "stderr").open("wb") as stderr:
        process = subprocess.Popen(command, env=full_env, stdout=stdout, stderr=stderr)
    run = Running(
        http=f"http://127.0.0.1:{http_port}",
        grpc_target=f"127.0.0.1:{grpc_port}",
        signer=Signer(secret=SECRET.encode(), issuer=ISSUER, audience=AUDIENCE),
        process=process,
        output=logs,
    )
    try:
        wait_http(run.http)
        yield run
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def gw_process() -> Iterator[Running]:
    with gateway_process() as run:
        yield run


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)
