"""A gateway in this process on free ports, with real signed tokens and clients for it:
what the tests (tests/conftest.py) and the benches (bench/page.py, bench/history.py) both
run against, so that neither imports the other's tree."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

from gateway.app import config as cfg
from gateway.app.server import Gateway
from gateway.core.tokens import Signer

SECRET = "test-secret-" + "x" * 40
ISSUER = AUDIENCE = "logs-gateway"


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
