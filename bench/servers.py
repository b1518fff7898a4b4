"""The servers under test, each a child process pinned to the server core: the gateway
(`python -m gateway serve`), nchan (nginx with one worker), redis-server, nats-server (1 or
3 nodes), and a bare aiohttp JSON handler (bench/bare_http.py) as the baseline of a POST.

Every server binds 127.0.0.1 on a free port, is stopped by its context manager (SIGTERM,
then SIGKILL after a bound), and is read through /proc for CPU time and resident memory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
# Servers on the first core we may use, the load generator on the others (all of them on
# a one-core machine: figures then measure the sum, and say so through the CPU columns).
_CORES = sorted(os.sched_getaffinity(0))
SERVER_CORE = _CORES[0]
LOAD_CORES = tuple(_CORES[1:] or _CORES)
NCHAN_MODULES = Path("/usr/lib/nginx/modules")
NCHAN_CONF = Path(__file__).with_name("nchan.conf")
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def pinned(command: list[str], core: int = SERVER_CORE) -> list[str]:
    return ["taskset", "-c", str(core), *command]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def run_delay(pid: int) -> float:
    """Seconds the threads of a process spent runnable but waiting for a CPU: what the
    machine's other work took from it (schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def rss_kb(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_KB


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@dataclass
class Server:
    """A running server (or several, as one deployment): where to reach it, its processes."""

    name: str
    http_port: int  # redis, nats: its (first) client port
    grpc_port: int = 0
    pids: list[int] = field(default_factory=list)
    python_pids: list[int] = field(default_factory=list)  # the gateways, for py-spy
    url: str = ""  # a broker: what `--broker` names

    def cpu(self) -> float:
        return sum(cpu_seconds(p) for p in self.pids)

    def rss_kb(self) -> int:
        return sum(rss_kb(p) for p in self.pids)

    def gateway_cpu(self) -> float:
        """CPU seconds of its gateways alone (without the broker's processes)."""
        return sum(cpu_seconds(p) for p in self.python_pids)

    def times(self) -> tuple[float, float]:
        """(CPU seconds, seconds waiting for a CPU) so far, of all its processes."""
        return self.cpu(), sum(run_delay(p) for p in self.pids)


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {HOST}:{port} after {timeout} s")


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was healthy")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=1) as answer,  # noqa: S310 - loopback only
        ):
            if answer.status == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{url} not healthy after {timeout} s")


def _stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def _logged(name: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def gateway(
    secret: str, broker: str = "memory", extra: tuple[str, ...] = (), tree: Path | None = None
) -> Iterator[Server]:
    """`logs-gateway serve` with the limits a load test needs raised (streams per token);
    `tree` runs the gateway of another checkout (an older commit, to compare with)."""
    http_port, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGS_GATEWAY_")}
    env["LOGS_GATEWAY_JWT_SECRET"] = secret
    if tree is not None:  # its own gateway and generated stubs, ahead of this tree's
        env["PYTHONPATH"] = f"{tree}{os.pathsep}{tree / 'clients' / 'python'}"
    command = [sys.executable, "-m", "gateway", "serve", "--host", HOST]
    command += ["--http-port", str(http_port), "--grpc-port", str(grpc_port)]
    # Limits meant for the public are lifted: one token opens every stream, publishes at will.
    command += ["--broker", broker, "--max-connections-per-token", "100000"]
    command += ["--publish-rate", "0"]
    command += ["--log-level", "warning", "--grace-seconds", "3", *extra]
    with _logged("gateway") as folder, (folder / "stderr").open("wb") as stderr:
        process = subprocess.Popen(pinned(command), env=env, cwd=tree, stdout=stderr, stderr=stderr)
        try:
            _wait_http(f"http://{HOST}:{http_port}/health", process)
            yield Server("gateway", http_port, grpc_port, [process.pid], [process.pid])
        except Exception:
            sys.stderr.write((folder / "stderr").read_text()[-4000:])
            raise
        finally:
            _stop(process)


@contextlib.contextmanager
def bare_http() -> Iterator[Server]:
    """bench/bare_http.py: aiohttp parsing and answering JSON, the baseline of a POST."""
    port = free_port()
    command = [sys.executable, "-m", "bench.bare_http", str(port)]
    with _logged("aiohttp") as folder, (folder / "stderr").open("wb") as stderr:
        process = subprocess.Popen(pinned(command), stdout=stderr, stderr=stderr)
        try:
            _wait_http(f"http://{HOST}:{port}/health", process)
            yield Server("aiohttp", port, pids=[process.pid], python_pids=[process.pid])
        finally:
            _stop(process)


def nchan_available() -> bool:
    return shutil.which("nginx") is not None and (NCHAN_MODULES / "ngx_nchan_module.so").exists()


@contextlib.contextmanager
def nchan() -> Iterator[Server]:
    """nginx with nchan, one worker, configured by bench/nchan.conf."""
    port = free_port()
    with _logged("nchan") as prefix, (prefix / "stderr").open("wb") as stderr:
        (prefix / "tmp").mkdir()
        conf = NCHAN_CONF.read_text().replace("@PORT@", str(port))
        (prefix / "nginx.conf").write_text(conf.replace("@MODULES@", str(NCHAN_MODULES)))
        command = ["nginx", "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf")]
        process = subprocess.Popen(pinned(command), stdout=stderr, stderr=stderr)
        try:
            _wait_port(port, process)
            yield Server("nchan", port, pids=[process.pid, *_worker_of(process)])
        finally:
            _stop(process)


def _worker_of(master: subprocess.Popen[bytes], timeout: float = 10.0) -> list[int]:
    """nginx's worker process (it may fork after the master listens)."""
    deadline = time.monotonic() + timeout
    while not (found := children(master.pid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


@contextlib.contextmanager
def redis(core: int = SERVER_CORE) -> Iterator[Server]:
    """A private redis-server on a free port that keeps nothing on disk, pinned to `core`."""
    port = free_port()
    with _logged("redis") as folder, (folder / "stderr").open("wb") as stderr:
        command = ["redis-server", "--port", str(port), "--bind", HOST, "--save", ""]
        command += ["--appendonly", "no", "--dir", str(folder)]
        process = subprocess.Popen(pinned(command, core), stdout=stderr, stderr=stderr)
        try:
            _wait_port(port, process)
            yield Server("redis", port, pids=[process.pid])
        finally:
            _stop(process)


@contextlib.contextmanager
def nats(nodes: int, core: int = SERVER_CORE) -> Iterator[Server]:
    """A private JetStream cluster of `nodes` nodes (1 or 3) on free ports, every node
    pinned to `core` (the server core like the other servers, or the load generator's, to
    leave the gateway a core of its own), keeping its store in a temp folder."""
    from tests.nats_cluster import running_nats  # the test suite's cluster (dev extra)

    prefix = tuple(pinned([], core))
    with _logged("nats") as folder, running_nats(folder, nodes, prefix=prefix) as up:
        pids = [node.process.pid for node in up.nodes if node.process is not None]
        yield Server("nats", up.nodes[0].port, pids=pids, url=up.url)
