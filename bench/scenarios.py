"""The scenarios: each starts its load generator workers, runs one measured window against a
running server and returns one row of figures.

The orchestrator (this process) only coordinates: it reads the server's CPU time and memory
from /proc around the window and adds up what the workers report.
"""

from __future__ import annotations

import multiprocessing
import time
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from bench import native, posts, workers
from bench.servers import Server
from bench.workers import Plan, Result, Target

_SPAWN = multiprocessing.get_context("spawn")  # no inherited loop, sockets or gRPC state
DRAIN_SECONDS = 10.0  # how long subscribers may take to receive what was published


@dataclass
class Row:
    """One line of the results table."""

    scenario: str
    server: str
    rate: float = 0.0  # deliveries/s, or entries/s for ingest
    unit: str = "deliveries/s"
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50, p90, p99, max
    lost: int = 0
    dups: int = 0
    load_cpu: float = 0.0  # share of the load core the load generator used
    publisher_cpu: float = 0.0  # the part of it the C POST publisher used (post rows)
    server_cpu: float = 0.0  # share of one core the server used
    server_wait: float = 0.0  # share of the window the server was runnable but not running
    kb_per_connection: float = 0.0
    connections: int = 0
    memory_curve: list[tuple[int, int]] = field(default_factory=list)  # (connections, RSS kB)
    note: str = ""


def percentiles(samples: Sequence[int]) -> dict[str, float]:
    """p50, p90, p99 and max of nanosecond samples, in milliseconds."""
    if not samples:
        return {}
    ordered = sorted(samples)
    last = len(ordered) - 1
    pick = {name: ordered[min(last, int(q * len(ordered)))] for name, q in _QUANTILES}
    return {name: value / 1e6 for name, value in (*pick.items(), ("max", ordered[-1]))}


_QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))


class Worker:
    """A spawned worker process and our end of its pipe."""

    def __init__(self, target: Any, *args: Any) -> None:
        self.conn, child = _SPAWN.Pipe()
        self.process = _SPAWN.Process(target=target, args=(child, *args), daemon=True)
        self.process.start()
        child.close()

    def send(self, *message: Any) -> None:
        self.conn.send(message)

    def expect(self, kind: str, timeout: float) -> Any:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"load generator worker sent no {kind!r} within {timeout} s")
        got, value = self.conn.recv()
        if got != kind:
            raise RuntimeError(f"load generator worker sent {got!r}, expected {kind!r}")
        return value

    def stop(self) -> None:
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


@contextmanager
def worker_group() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()


def _split(items: list[str], parts: int) -> list[list[str]]:
    return [items[i::parts] for i in range(parts)]


def deliveries(
    scenario: str,
    server: Server,
    target: Target,
    subscribers: list[str],
    plan: Plan,
    publish_to: Target | None = None,
    *,
    processes: int = 2,
    full_every: int = 8,
) -> Row:
    """Subscribers (one per item of `subscribers`, naming its channel) and one publisher
    (to `publish_to`, another instance, or else `target`); the row counts what every
    subscriber received against what was published."""
    processes = max(1, min(processes, len(subscribers)))
    progress = _SPAWN.Array("q", processes, lock=False)
    binary = native.subscribers()
    with worker_group() as started:
        subs = [
            Worker(workers.subscribe_native, binary, target, part, full_every, progress, slot)
            for slot, part in enumerate(_split(subscribers, processes))
        ]
        publisher = _publisher(publish_to or target, plan, progress)
        started += [*subs, publisher]
        for worker, part in zip(subs, _split(subscribers, processes), strict=True):
            worker.send("connect", len(part))
        opened = sum(w.expect("ready", 120) for w in subs)
        publisher.expect("ready", 30)
        before = server.times()
        for worker in (*subs, publisher):
            worker.send("go")
        sent: Result = publisher.expect("result", plan.seconds + 60)
        for worker in subs:
            worker.send("expect", sent.published, DRAIN_SECONDS)
        got: list[Result] = [w.expect("result", DRAIN_SECONDS + 30) for w in subs]
        used = _used(before, server.times())
    return _delivery_row(scenario, server, sent, got, used, opened, len(subscribers))


def _publisher(target: Target, plan: Plan, progress: Any) -> Worker:
    """The C POST publisher for a flood of POSTs on `plan.connections`, else the Python one."""
    if plan.connections:
        return Worker(posts.publish, native.posters(), target, plan, progress)
    return Worker(workers.publish, target, plan, progress)


def _delivery_row(
    scenario: str,
    server: Server,
    sent: Result,
    got: list[Result],
    used: tuple[float, float],
    opened: int,
    wanted: int,
) -> Row:
    last = max(r.last_receive_ns for r in got) or time.time_ns()
    seconds = max(1e-9, (last - sent.first_send_ns) / 1e9)
    received = sum(r.received for r in got)
    latencies = array("q")
    for r in got:
        latencies.extend(r.latencies)
    row = Row(scenario, server.name, rate=received / seconds, latency_ms=percentiles(latencies))
    row.lost = sum(r.lost for r in got) + sent.acks.errors
    row.dups = sum(r.dups for r in got) + sent.acks.duplicates
    row.load_cpu = (sent.cpu + sum(r.cpu for r in got)) / seconds
    row.publisher_cpu = sent.publisher_cpu / seconds
    row.server_cpu, row.server_wait = used[0] / seconds, used[1] / seconds
    row.connections = opened
    problems = [f"{wanted - opened} not connected"] if opened < wanted else []
    problems += [f"{sent.acks.errors} published, not acknowledged"] if sent.acks.errors else []
    problems += [f"{n} {what}" for n, what in _anomalies(got) if n]
    row.note = ", ".join(problems)
    return row


def _used(before: tuple[float, float], after: tuple[float, float]) -> tuple[float, float]:
    return after[0] - before[0], after[1] - before[1]


def _anomalies(got: list[Result]) -> list[tuple[int, str]]:
    return [
        (sum(r.gaps for r in got), "gap events"),
        (sum(r.closed for r in got), "closed by the server"),
        (sum(r.refused for r in got), "refused"),
    ]


def ingest(scenario: str, server: Server, target: Target, plan: Plan, processes: int = 1) -> Row:
    """Publishers only: entries acknowledged per second and the send-to-ack time."""
    return _ingest_row(scenario, server.name, [_ingest_window(server, target, plan, processes)])


def ingest_in_turns(runs: Sequence[tuple[str, Server, Target, Plan]], turns: int) -> list[Row]:
    """Ingest runs (scenario, server, target, plan) taking turns: each gets `turns` windows
    of a `turns`th of its plan's seconds, one after another. Whatever else the machine does
    meanwhile falls on all of them alike, so their CPU per entry compares within one run
    (a window each, one after another, differed by a third between runs here)."""
    windows: dict[tuple[str, str], list[_Window]] = {(s, v.name): [] for s, v, _, _ in runs}
    for _ in range(turns):
        for scenario, server, target, plan in runs:
            window = replace(plan, seconds=plan.seconds / turns)
            windows[scenario, server.name].append(_ingest_window(server, target, window, 1))
    return [_ingest_row(scenario, name, got) for (scenario, name), got in windows.items()]


@dataclass
class _Window:
    results: list[Result]
    seconds: float  # first send to last answer
    server_cpu: float
    server_wait: float
    gateway_cpu: float  # the gateways' part of server_cpu (the rest is the broker's)


def _ingest_window(server: Server, target: Target, plan: Plan, processes: int) -> _Window:
    per_process = max(1, plan.streams // processes)
    with worker_group() as started:
        pubs = []
        for _ in range(processes):
            pubs.append(Worker(workers.publish, target, replace(plan, streams=per_process), None))
        started += pubs
        for worker in pubs:
            worker.expect("ready", 30)
        before, gateway_before = server.times(), server.gateway_cpu()
        for worker in pubs:
            worker.send("go")
        got: list[Result] = [w.expect("result", plan.seconds + 60) for w in pubs]
        used = _used(before, server.times())
        gateway = server.gateway_cpu() - gateway_before
    first = min(r.first_send_ns for r in got)
    seconds = max(1e-9, (max(r.last_receive_ns for r in got) - first) / 1e9)
    return _Window(got, seconds, *used, gateway)


def _ingest_row(scenario: str, server: str, windows: list[_Window]) -> Row:
    seconds = sum(w.seconds for w in windows)
    got = [r for w in windows for r in w.results]
    latencies = array("q")
    for r in got:
        latencies.extend(r.acks.latencies)
    row = Row(scenario, server, unit="entries/s", latency_ms=percentiles(latencies))
    row.rate = sum(r.acks.entries for r in got) / seconds
    row.lost = sum(r.acks.errors for r in got)
    row.dups = sum(r.acks.duplicates for r in got)
    row.load_cpu = sum(r.cpu for r in got) / seconds
    row.server_cpu = sum(w.server_cpu for w in windows) / seconds
    row.server_wait = sum(w.server_wait for w in windows) / seconds
    gateway, entries = sum(w.gateway_cpu for w in windows), sum(r.acks.entries for r in got)
    if entries and gateway < sum(w.server_cpu for w in windows):  # a broker beside it
        row.note = f"gateway {1e6 * gateway / entries:.1f} us CPU/entry"
    return row


def interest(
    scenario: str, server: Server, viewer: Target, quiet: str, plan: Plan, publisher: Target
) -> Row:
    """One subscriber of `quiet` on `viewer` (the last gateway of `server`) while `plan`
    ingests to other channels through `publisher`: the row's rate is that ingest, its
    server CPU the viewing gateway's alone, what it spends on traffic nobody there watches."""
    watching = Server("viewer", viewer.http_port, pids=server.python_pids[-1:])
    progress = _SPAWN.Array("q", 1, lock=False)
    with worker_group() as started:
        sub = Worker(workers.subscribe, viewer, [quiet], 1, progress, 0)
        pub = Worker(workers.publish, publisher, plan, None)
        started += [sub, pub]
        sub.send("connect", 1)
        opened = sub.expect("ready", 30)
        pub.expect("ready", 30)
        before = watching.times()
        for worker in (sub, pub):
            worker.send("go")
        sent: Result = pub.expect("result", plan.seconds + 60)
        sub.send("expect", {}, 0.0)
        got: Result = sub.expect("result", 30)
        used = _used(before, watching.times())
    seconds = max(1e-9, (sent.last_receive_ns - sent.first_send_ns) / 1e9)
    row = Row(scenario, server.name, rate=sent.acks.entries / seconds, unit="entries/s")
    row.server_cpu, row.server_wait = used[0] / seconds, used[1] / seconds
    row.lost = sent.acks.errors + (1 - opened) + got.closed
    row.dups = sent.acks.duplicates
    per_million = used[0] / max(1, sent.acks.entries) * 1e6
    row.note = f"viewer's gateway: {per_million:.2f} CPU-s per million entries elsewhere"
    return row


def idle(
    scenario: str, server: Server, target: Target, connections: int, steps: int, processes: int = 2
) -> Row:
    """Open `connections` SSE streams in `steps`, reading the server's RSS after each."""
    processes = max(1, min(processes, connections))
    channel = target.channel(f"idle{time.monotonic_ns()}", 0)
    shares = _split([channel] * connections, processes)
    progress = _SPAWN.Array("q", processes, lock=False)
    curve: list[tuple[int, int]] = []
    with worker_group() as started:
        subs = [
            Worker(workers.subscribe, target, part, 1, progress, slot)
            for slot, part in enumerate(shares)
        ]
        started += subs
        time.sleep(0.5)
        curve.append((0, server.rss_kb()))
        opened = 0
        for step in range(1, steps + 1):
            for worker, part in zip(subs, shares, strict=True):
                worker.send("connect", len(part) * step // steps - len(part) * (step - 1) // steps)
            opened = sum(w.expect("ready", 120) for w in subs)
            time.sleep(0.3)  # let the server finish each handshake's allocations
            curve.append((opened, server.rss_kb()))
        for worker in subs:
            worker.send("go")
            worker.send("expect", {}, 0.0)
        got: list[Result] = [w.expect("result", 30) for w in subs]
    row = Row(scenario, server.name, unit="kB/connection", connections=opened, memory_curve=curve)
    row.kb_per_connection = (curve[-1][1] - curve[0][1]) / max(1, opened)
    row.lost = connections - opened + sum(r.closed for r in got)
    row.note = ", ".join(f"{n} {what}" for n, what in _anomalies(got) if n)
    return row
