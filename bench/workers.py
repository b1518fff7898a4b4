"""Load generator processes, pinned to the load core: subscriber workers (the C subscribers
of bench/sse_subscribers.c where a delivery rate is measured, bench/sse_load.py's where
connections are held or resumed), a publisher, and the event-loop lag probe (a `GET /health`
round trip at a steady pace).

The orchestrator talks to each worker over a pipe, in steps: a worker says `ready`, waits
for `go` (the measured window starts), and answers `result` with its own CPU time. The
publisher stays at most `window` entries per channel ahead of the slowest subscriber, read
from a shared array each subscriber worker updates: a closed loop, so a flood measures what
the server sustains instead of filling its buffers until it drops slow consumers.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import resource
import time
from array import array
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench import entries as wire
from bench.publish_load import Acks, GrpcPublisher, HttpPublisher
from bench.servers import LOAD_CORES
from bench.sse_load import Shared, SseSubscriber, Tracker, get_request, open_subscribers

PROGRESS_EVERY = 0.002  # seconds between a subscriber worker's progress updates


@dataclass(frozen=True)
class Target:
    """A server as the load generator sees it (picklable)."""

    kind: str  # "gateway", "nchan" or "aiohttp" (a bare JSON handler: publish only)
    host: str
    http_port: int
    grpc_port: int = 0
    sub_token: str = ""
    pub_token: str = ""

    def channel(self, run: str, index: int) -> str:
        if self.kind == "gateway":
            return f"logs:bench:{run}:c{index}"
        return f"bench_{run}_c{index}"

    def publish_path(self, channel: str) -> str:
        return {"gateway": "/api/logs/publish", "nchan": f"/pub/{channel}"}.get(self.kind, "/")

    def post_body(self, channel: str, offset: int, now_ns: int) -> bytes:
        if self.kind == "nchan":
            return wire.nchan_entry(channel, offset, now_ns)
        return wire.http_entry(channel, now_ns)

    def post_template(self, channel: str) -> bytes:
        """`post_body` as a template of bench/post_load.c (`entries.template`)."""
        now = time.time_ns()
        return wire.template(self.post_body(channel, wire.TEMPLATE_OFFSET, now), now)

    def stream_path(self, channel: str) -> str:
        if self.kind == "gateway":
            return f"/api/logs/stream?channels={channel}"
        return f"/sub/{channel}"


@dataclass(frozen=True)
class Plan:
    """What the publisher does: `mode` is flood (closed loop), paced (`rate`/s), ingest, or
    fresh (a new channel per entry: `count` of them at `rate`/s, or as fast as acks allow)."""

    mode: str
    channels: tuple[str, ...] = ()
    seconds: float = 1.0
    batch: int = 1
    window: int = 1000
    rate: int = 0
    streams: int = 1
    in_flight: int = 8
    tick: float = 0.001  # paced: how often the publisher sends what is due (one request)
    http: bool = False  # the gateway too gets single-entry HTTP POSTs, as nchan always does
    count: int = 0  # fresh: channels to publish to (0: until `seconds` are up)
    # flood over HTTP: the C publisher (bench/post_load.c) on this many connections, each
    # with `in_flight` POSTs; 0: the Python one (a single connection)
    connections: int = 0


@dataclass
class Result:
    """One worker's figures for the measured window."""

    cpu: float = 0.0
    received: int = 0
    lost: int = 0
    dups: int = 0
    gaps: int = 0
    opened: int = 0
    closed: int = 0
    refused: int = 0
    first_send_ns: int = 0
    last_receive_ns: int = 0
    published: dict[str, int] = field(default_factory=dict)
    publisher_cpu: float = 0.0  # a publisher's own CPU seconds (the C one: its process)
    acks: Acks = field(default_factory=Acks)
    latencies: array[int] = field(default_factory=lambda: array("q"))


def cpu_time() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_pinned(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Pin this process to the load cores and run `main` on uvloop when it is installed."""
    os.sched_setaffinity(0, set(LOAD_CORES))
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


async def receive(conn: Connection) -> Any:
    """The next message from the orchestrator, without blocking the loop."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), readable)
    try:
        await ready
    finally:
        loop.remove_reader(conn.fileno())
        os.set_blocking(conn.fileno(), True)  # the loop made it non-blocking; send() needs it
    return conn.recv()


# -- subscribers ---------------------------------------------------------------------------


def subscribe(
    conn: Connection, target: Target, channels: list[str], full_every: int, progress: Any, slot: int
) -> None:
    """Worker: one subscriber per entry of `channels`; `full_every`-th ones fully checked."""
    run_pinned(lambda: _subscribe(conn, target, channels, full_every, progress, slot))


async def _subscribe(
    conn: Connection, target: Target, channels: list[str], full_every: int, progress: Any, slot: int
) -> None:
    shared = Shared(array("q"))
    subs: list[SseSubscriber] = []
    trackers: list[Tracker] = []
    pending = list(channels)
    while (message := await receive(conn))[0] == "connect":
        batch, pending = pending[: message[1]], pending[message[1] :]
        new = [Tracker(0, (len(trackers) + i) % full_every == 0) for i in range(len(batch))]
        requests = [
            (get_request(target.stream_path(c), target.host, target.sub_token), t)
            for c, t in zip(batch, new, strict=True)
        ]
        subs += await open_subscribers(target.host, target.http_port, requests, shared)
        trackers += new
        conn.send(("ready", shared.opened))
    updater = asyncio.ensure_future(_report_progress(trackers, progress, slot))
    cpu, shared.latencies = cpu_time(), array("q")  # `go`: the measured window starts
    published, timeout = (await receive(conn))[1:]
    await _wait_all(trackers, channels, published, timeout)
    updater.cancel()
    result = Result(cpu=cpu_time() - cpu, latencies=shared.latencies)
    result.last_receive_ns = shared.last_receive_ns
    for channel, tracker in zip(channels, trackers, strict=False):
        result.received += tracker.received
        result.lost += tracker.lost(published.get(channel, 0))
        result.dups += tracker.dups
        result.gaps += tracker.gaps
    result.opened, result.closed, result.refused = shared.opened, shared.closed, shared.bad_status
    conn.send(("result", result))
    for sub in subs:
        sub.close()


async def _report_progress(trackers: list[Tracker], progress: Any, slot: int) -> None:
    """Keep `progress[slot]` at the offset the slowest subscriber expects next."""
    while True:
        progress[slot] = min((t.next for t in trackers), default=0)
        await asyncio.sleep(PROGRESS_EVERY)


async def _wait_all(
    trackers: list[Tracker], channels: list[str], published: dict[str, int], timeout: float
) -> None:
    """Until every subscriber has what was published to its channel, or `timeout`."""
    deadline = time.monotonic() + timeout
    owed = list(zip(trackers, channels, strict=False))
    while time.monotonic() < deadline:
        owed = [(t, c) for t, c in owed if t.next < published.get(c, 0)]
        if not owed:
            return
        await asyncio.sleep(0.01)


def subscribe_native(
    conn: Connection,
    binary: Path,
    target: Target,
    channels: list[str],
    full_every: int,
    progress: Any,
    slot: int,
) -> None:
    """Worker: the C subscribers `binary` on `channels`, driven through their stdin and
    stdout (bench/sse_subscribers.c): the orchestrator's steps in, `progress[slot]` and the
    result out. They connect once, all of them."""
    args = (conn, binary, target, channels, full_every, progress, slot)
    run_pinned(lambda: _subscribe_native(*args))


async def _subscribe_native(
    conn: Connection,
    binary: Path,
    target: Target,
    channels: list[str],
    full_every: int,
    progress: Any,
    slot: int,
) -> None:
    message = await receive(conn)
    if message != ("connect", len(channels)):
        raise RuntimeError(f"the C subscribers connect all at once, not {message!r}")
    child = await asyncio.create_subprocess_exec(
        *(str(binary), target.host, str(target.http_port), target.sub_token or "-"),
        str(full_every),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    answers: asyncio.Queue[list[str]] = asyncio.Queue()
    result = Result()
    relay = asyncio.ensure_future(_relay(child.stdout, progress, slot, answers, result))
    paths = "".join(f"{target.stream_path(c)}\n" for c in channels)
    child.stdin.write(f"{paths}\n".encode())
    conn.send(("ready", int((await _answer(answers, "ready"))[0])))
    await receive(conn)  # go
    cpu = cpu_time()
    child.stdin.write(b"go\n")
    published, timeout = (await receive(conn))[1:]
    counts = " ".join(str(published.get(c, 0)) for c in channels)
    child.stdin.write(f"expect {int(timeout * 1000)} {counts}\n".encode())
    *counted, child_cpu, _ = await _answer(answers, "result")
    await relay
    await child.wait()
    result.cpu = cpu_time() - cpu + float(child_cpu)
    figures = [int(n) for n in counted]
    result.received, result.lost, result.dups, result.gaps = figures[:4]
    result.opened, result.closed, result.refused, result.last_receive_ns = figures[4:]
    conn.send(("result", result))


async def _relay(
    stdout: asyncio.StreamReader,
    progress: Any,
    slot: int,
    answers: asyncio.Queue[list[str]],
    result: Result,
) -> None:
    """The C subscribers' lines: progress into `progress[slot]`, the rest to `answers`;
    the latency samples after the result line into `result`."""
    async for line in stdout:
        kind, *values = line.decode().split()
        if kind == "progress":
            progress[slot] = int(values[0])
            continue
        answers.put_nowait([kind, *values])
        if kind == "result":
            samples = int(values[-1])
            result.latencies.frombytes(await stdout.readexactly(samples * 8))
            return
    answers.put_nowait(["exit"])  # before their result: what they said is on stderr


async def _answer(answers: asyncio.Queue[list[str]], kind: str) -> list[str]:
    got, *values = await answers.get()
    if got != kind:
        raise RuntimeError(f"the C subscribers said {got!r}, expected {kind!r}")
    return values


# -- publisher -----------------------------------------------------------------------------


def publish(conn: Connection, target: Target, plan: Plan, progress: Any) -> None:
    """Worker: publish along `plan`, report what was published and acknowledged."""
    run_pinned(lambda: _publish(conn, target, plan, progress))


async def _publish(conn: Connection, target: Target, plan: Plan, progress: Any) -> None:
    sender = await _sender(target, plan)
    conn.send(("ready", 0))
    await receive(conn)  # go
    cpu = cpu_time()
    result = Result(first_send_ns=time.time_ns())
    if plan.mode == "ingest":
        await _ingest(sender, plan)
    elif plan.mode == "fresh":
        await _fresh(sender, plan)
    else:
        await _feed(sender, plan, progress, result.published)
    await sender.close(timeout=10.0)
    for channel, refused in sender.acks.refused.items():  # subscribers are owed the rest
        result.published[channel] -= refused
    result.last_receive_ns = time.time_ns()  # the last ack is in
    result.cpu = cpu_time() - cpu
    result.acks = sender.acks
    conn.send(("result", result))


class _Streams:
    """The publisher's connections: `in_flight` batches each, closed together."""

    def __init__(self, target: Target, plan: Plan) -> None:
        self.target = target
        self.plan = plan
        self.grpc: list[GrpcPublisher] = []
        self.http: HttpPublisher | None = None
        self.acks = Acks()

    async def close(self, timeout: float) -> None:
        if self.http is not None:
            await self.http.close(timeout)
        await asyncio.gather(*(p.close(timeout) for p in self.grpc))
        parts = [p.acks for p in self.grpc] + ([self.http.acks] if self.http else [])
        for acks in parts:
            self.acks.entries += acks.entries
            self.acks.errors += acks.errors
            self.acks.duplicates += acks.duplicates
            self.acks.latencies.extend(acks.latencies)
            self.acks.refused.update(acks.refused)


async def _sender(target: Target, plan: Plan) -> _Streams:
    streams = _Streams(target, plan)
    if target.kind != "gateway" or plan.http:
        port, token = target.http_port, target.pub_token
        streams.http = HttpPublisher(target.host, port, plan.in_flight, token)
        await streams.http.connect()
        return streams
    address = f"{target.host}:{target.grpc_port}"
    for i in range(plan.streams):
        producer = f"bench-{os.getpid()}-{i}"
        streams.grpc.append(GrpcPublisher(address, target.pub_token, producer, plan.in_flight))
    return streams


async def _feed(streams: _Streams, plan: Plan, progress: Any, published: dict[str, int]) -> None:
    """Round-robin over the channels: as fast as the window allows (flood), or at `rate`."""
    channels = plan.channels
    grpc_entries = [wire.GrpcEntries(c) for c in channels]
    sent = 0
    start = time.monotonic()
    deadline = start + plan.seconds
    while (now := time.monotonic()) < deadline:
        if plan.mode == "paced":
            due = min(int((now - start) * plan.rate), int(plan.seconds * plan.rate)) - sent
            if due <= 0:
                await asyncio.sleep(plan.tick)
                continue
        else:
            due = plan.batch
            if (sent + due) // len(channels) + 1 - min(progress) > plan.window:
                # Not less: uvloop rounds a timer to whole milliseconds, and a 0.5 ms
                # sleep became none: the publisher spun (4 of 5 CPU-seconds of a window)
                # on the core its subscribers share.
                await asyncio.sleep(PROGRESS_EVERY / 2)
                continue
        await _send(streams, plan, channels, grpc_entries, sent, due)
        sent += due
    for i, channel in enumerate(channels):
        published[channel] = sent // len(channels) + (i < sent % len(channels))


async def _send(
    streams: _Streams,
    plan: Plan,
    channels: tuple[str, ...],
    grpc_entries: list[wire.GrpcEntries],
    sent: int,
    count: int,
) -> None:
    """Send entries number `sent` to `sent + count - 1` (channel = number mod channels)."""
    indexes = [(sent + k) % len(channels) for k in range(count)]
    now = time.time_ns()
    if streams.http is not None:
        target = streams.target
        for k, i in enumerate(indexes):
            body = target.post_body(channels[i], (sent + k) // len(channels), now)
            await streams.http.send(target.publish_path(channels[i]), body, 1, channels[i])
        return
    batch = plan.batch if plan.mode == "flood" else count
    for first in range(0, count, batch):
        part = indexes[first : first + batch]
        await streams.grpc[0].send(
            [grpc_entries[i].entry(now) for i in part], [channels[i] for i in part]
        )


async def _ingest(streams: _Streams, plan: Plan) -> None:
    """Every stream sends the same pre-built batch until the deadline (over HTTP: the same
    single-entry POST)."""
    if streams.http is not None:
        await _post_ingest(streams.http, streams.target, plan)
        return
    entry = wire.GrpcEntries(plan.channels[0]).entry(time.time_ns())
    body = entry * plan.batch
    deadline = time.monotonic() + plan.seconds

    async def one(publisher: GrpcPublisher) -> None:
        while time.monotonic() < deadline:
            await publisher.send_raw(body, plan.batch)

    await asyncio.gather(*(one(p) for p in streams.grpc))


async def _post_ingest(publisher: HttpPublisher, target: Target, plan: Plan) -> None:
    """The same POST until the deadline: one entry, or (gateway) a batch body of
    `plan.batch` entries."""
    channel, now = plan.channels[0], time.time_ns()
    path = target.publish_path(channel)
    if plan.batch > 1:
        body = wire.http_batch(channel, now, plan.batch)
    else:
        body = target.post_body(channel, 0, now)
    deadline = time.monotonic() + plan.seconds
    while time.monotonic() < deadline:
        await publisher.send(path, body, plan.batch)


async def _fresh(streams: _Streams, plan: Plan) -> None:
    """One entry to each of `count` new channels (`plan.channels[0]` and a number), `batch`
    channels a request, the streams in turn; paced at `rate` entries/s when it is set."""
    prefix = plan.channels[0]
    publishers = itertools.cycle(streams.grpc)
    start = time.monotonic()
    deadline = start + plan.seconds
    sent = 0
    while (now := time.monotonic()) < deadline and (not plan.count or sent < plan.count):
        size = min(plan.batch, plan.count - sent) if plan.count else plan.batch
        if plan.rate and (now - start) * plan.rate < sent + size:
            await asyncio.sleep(plan.tick)
            continue
        stamp = time.time_ns()
        items = [wire.GrpcEntries(f"{prefix}{sent + k:07d}").entry(stamp) for k in range(size)]
        await next(publishers).send(items)
        sent += size


# -- event-loop lag probe ------------------------------------------------------------------


def probe_health(conn: Connection, host: str, port: int, every: float) -> None:
    """Worker: GET /health every `every` seconds on one keep-alive connection from `go`
    until `stop`; answers (send times, round trips) in nanoseconds. A round trip is the
    gateway's event-loop lag plus a constant: the request waits while the loop is busy."""
    run_pinned(lambda: _probe_health(conn, host, port, every))


async def _probe_health(conn: Connection, host: str, port: int, every: float) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    request = get_request("/health", host, None)
    conn.send(("ready", 0))
    await receive(conn)  # go
    stop = asyncio.ensure_future(receive(conn))
    stamps, trips = array("q"), array("q")
    while not stop.done():
        sent = time.monotonic_ns()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        await reader.readexactly(length)
        stamps.append(sent)
        trips.append(time.monotonic_ns() - sent)
        await asyncio.sleep(max(0.0, every - (time.monotonic_ns() - sent) / 1e9))
    writer.close()
    conn.send(("result", (stamps, trips)))
