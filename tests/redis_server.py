"""Private redis-servers for the tests: a free port, a temp folder, stopped at the end.

Tests never touch a Redis they did not start. Where redis-server is missing they fail, saying
so, in CI and on a developer's machine alike.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import free_port


def redis_server_binary() -> str:
    """Path of redis-server; fails the test naming what is missing when there is none (never
    a skip: the Redis broker must never go untested silently)."""
    path = shutil.which("redis-server")
    if path is None:
        pytest.fail(
            "redis-server is not installed: scripts/test installs it "
            "(or apt-get install redis-server)",
            pytrace=False,
        )
    return path


class RedisServer:
    """One redis-server process; `persistent` keeps every write on disk (AOF, fsync always),
    so data survives a stop and start, as a production Redis configured for it does."""

    def __init__(self, folder: Path, *, persistent: bool = False) -> None:
        self.binary = redis_server_binary()
        self.folder = folder
        self.port = free_port()
        self.persistent = persistent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def start(self) -> None:
        durability = ["--appendonly", "yes", "--appendfsync", "always"]
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")]
        command += ["--save", "", *(durability if self.persistent else ["--appendonly", "no"])]
        command += ["--enable-debug-command", "local"]  # DEBUG SLEEP: a Redis made slow
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start; see {self.folder}") from None
                time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)
        self.process = None


@contextlib.contextmanager
def running_redis(folder: Path, *, persistent: bool = False) -> Iterator[RedisServer]:
    """A started RedisServer, stopped on exit (even if a test stopped and restarted it)."""
    server = RedisServer(folder, persistent=persistent)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One throwaway Redis (no persistence) shared by the session; tests keep apart by
    key prefix or flush it first."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server
