"""Shared test helpers: real gateways on free ports, real signed tokens, real clients.

A gateway in the test's own loop and its clients come from harness/gateway.py, which the
benches use too; they are imported from here by the tests, as before."""

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
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import config as cfg
from gateway.core.keys import PublicKey
from gateway.core.tokens import Signer, Verifier
from harness.gateway import (
    AUDIENCE,
    ISSUER,
    SECRET,
    Running,
    entry,
    make_config,
    running_gateway,
)

# What the tests import from here (harness.gateway's, and this file's own below).
__all__ = [
    "AUDIENCE",
    "ISSUER",
    "SECRET",
    "Running",
    "entry",
    "free_port",
    "gateway_process",
    "make_config",
    "make_verifier",
    "running_gateway",
    "wait_for",
]

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
