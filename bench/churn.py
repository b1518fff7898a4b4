"""`python -m bench churn`: channels that come and go (issue 12), against a real gateway.

A channel per workflow run (`logs:etl:workspace123:run-N`), one 200-byte entry each, is the
load: the gateway must forget what expired, and its cost must follow what it holds and what
matches, not every channel it ever saw. Four phases, each on a fresh gateway:

- lifecycle (`--history-seconds H`): a round of fresh channels at a steady rate, RSS (/proc)
  and `logs_gateway_channels` (/metrics) sampled throughout; after the round has expired, a
  resume whose cursor predates all of it (frames and bytes counted, then resumed again from
  the last id it got); then a second round. Growth of a round = its RSS high-water mark
  over the high-water mark before it.
- presence (default history, so channels stay): resume of one channel (`Last-Event-ID`, to
  its first event) and a wildcard subscribe (to `ready`), timed with few channels present and
  with many; then event-loop lag while viewers resume at once.
- ingest to fresh channels with wildcard patterns open on many SSE streams, and with none;
  a bystander subscriber's latency on its own channel meanwhile.

Event-loop lag is read from outside, as the round trip of `GET /health` sent every
LAG_EVERY seconds from a separate process: a request waits while the loop is busy, so the
round trip is the lag plus a constant (the idle figure shows the constant). It needs nothing
from the gateway, so the gateway before the change is measured the same way (`--against`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import entries as wire
from bench import workers
from bench.churn_report import Churn, churn_table, plot_churn
from bench.publish_load import GrpcPublisher
from bench.scenarios import Worker, percentiles, worker_group
from bench.servers import Server
from bench.sse_load import Shared, SseSubscriber, Tracker, get_request, open_subscribers
from bench.suite import Servers
from bench.workers import Plan, Result, Target

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).with_name("results")
RIGHTS = "logs:>"  # what the bench's tokens may publish and subscribe to
WORKSPACE = "logs:etl:workspace123:run-"
WILDCARD = "logs:*:workspace123:>"
BYSTANDER = "logs:etl:bystander:live"
LAG_EVERY = 0.002  # seconds between /health probes
BYSTANDER_EVERY = 0.01  # seconds between the bystander's entries
PROBE_BOUND = 60.0  # seconds one timed resume may take
STORM_BOUND = 90.0  # seconds the viewers of a storm may take, together
READY = b"event: ready\n"
_ID = re.compile(rb"(?m)^id: (\S+)$")


@dataclass(frozen=True)
class Sizes:
    history_seconds: float = 3.0  # the lifecycle and ingest gateways' --history-seconds
    round_channels: int = 100_000  # fresh channels per lifecycle round; present ones, "many"
    rate: int = 25_000  # new channels per second in a round
    pause: float = 4.0  # history windows from a round's end to the next (expiry, forgetting)
    few: int = 1_000  # channels present for the "few" figures
    probes: int = 20  # resumes (and subscribes) timed per figure, one after the other
    viewers: int = 100  # SSE viewers resuming at once
    patterns: int = 5_000  # wildcard patterns open during ingest
    patterns_per_stream: int = 10
    ingest_seconds: float = 3.0
    sample_every: float = 0.25  # seconds between RSS and channel-count samples


FULL = Sizes()
QUICK = Sizes(
    history_seconds=1.0,
    round_channels=2_000,
    rate=4_000,
    pause=3.0,
    few=100,
    probes=3,
    viewers=10,
    patterns=100,
    ingest_seconds=0.5,
    sample_every=0.1,
)


# -- probes: one SSE stream read by this process ---------------------------------------------


class Frames(Tracker):
    """A Tracker that also keeps what a probe reports: bytes read, whether `ready` came, the
    last `id`, and `done` (the receive time) once `ready` and `want` log events are in."""

    __slots__ = ("bytes", "done", "last_id", "ready", "want")

    def __init__(self, want: int, full: bool = False) -> None:
        super().__init__(0, full)
        self.want = want
        self.bytes = 0
        self.ready = False
        self.last_id = ""
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def take(self, block: bytes, now_ns: int, latencies: array[int]) -> None:
        self.bytes += len(block)
        self.ready = self.ready or READY in block
        if ids := _ID.findall(block):
            self.last_id = ids[-1].decode()
        super().take(block, now_ns, latencies)
        if self.ready and self.received >= self.want and not self.done.done():
            self.done.set_result(now_ns)


async def _open(
    target: Target, streams: list[tuple[str, str, int]]
) -> tuple[list[Frames], list[SseSubscriber], Shared]:
    """SSE streams of (channels, Last-Event-ID, log events wanted), opened all at once."""
    shared = Shared(array("q"))
    frames = [Frames(want) for _, _, want in streams]
    requests = [
        (get_request(target.stream_path(c), target.host, target.sub_token, last), f)
        for (c, last, _), f in zip(streams, frames, strict=True)
    ]
    concurrency = len(requests)
    subs = await open_subscribers(target.host, target.http_port, requests, shared, concurrency)
    return frames, subs, shared


Timing = tuple[list[float], int]  # ms per stream, and how many were refused


def _timed(target: Target, streams: list[tuple[str, str, int]], bound: float) -> Timing:
    """Milliseconds from connecting until each stream had its `ready` and wanted events
    (`bound` s for those that never did: refused ones, counted apart, or late ones)."""
    return asyncio.run(_timing(target, streams, bound))


async def _timing(target: Target, streams: list[tuple[str, str, int]], bound: float) -> Timing:
    started = time.time_ns()
    deadline = time.monotonic() + bound
    opening = asyncio.ensure_future(_open(target, streams))
    await asyncio.wait([opening], timeout=bound)  # a gateway that never answers is bounded too
    if not opening.done():
        opening.cancel()
        return [bound * 1e3] * len(streams), 0
    frames, subs, shared = opening.result()
    try:
        await asyncio.wait([f.done for f in frames], timeout=max(0.0, deadline - time.monotonic()))
    finally:
        for sub in subs:
            sub.close()
    ends = [f.done.result() if f.done.done() else started + int(bound * 1e9) for f in frames]
    return [(end - started) / 1e6 for end in ends], shared.bad_status


async def _head(target: Target) -> str:
    """The cursor of now: the id of a live start's `ready`."""
    frames, subs, _ = await _open(target, [(BYSTANDER, "", 0)])
    await asyncio.wait_for(frames[0].done, 30)
    subs[0].close()
    return frames[0].last_id


async def _replay(target: Target, cursor: str, quiet: float, bound: float) -> dict[str, Any]:
    """Resume WILDCARD from `cursor` and read until the stream is quiet for `quiet` s (or
    ends, or `bound`): what a client gets on that first try."""
    started = time.time_ns()
    (frames,), (sub,), shared = await _open(target, [(WILDCARD, cursor, 0)])
    deadline = time.monotonic() + bound
    seen = -1
    while frames.bytes != seen and not shared.closed and time.monotonic() < deadline:
        seen = frames.bytes
        await asyncio.sleep(quiet)
    closed = shared.closed > 0
    sub.close()
    return {
        "gaps": frames.gaps,
        "logs": frames.received,
        "bytes": frames.bytes,
        "ms": max(0, shared.last_receive_ns - started) / 1e6,
        "closed": closed,
        "refused": shared.bad_status > 0,  # answered with an error, not a stream
        "last_id": frames.last_id,
    }


async def _bystander(pub: Target, sub: Target, seconds: float, drain: float) -> dict[str, Any]:
    """One subscriber of a channel nobody else uses, fed an entry every BYSTANDER_EVERY s:
    how long its entries take while the gateway is busy elsewhere."""
    tracker = Frames(sys.maxsize, full=True)
    shared = Shared(array("q"))
    request = get_request(sub.stream_path(BYSTANDER), sub.host, sub.sub_token)
    opening = open_subscribers(sub.host, sub.http_port, [(request, tracker)], shared)
    (stream,) = await asyncio.wait_for(opening, 60)
    publisher = GrpcPublisher(f"{pub.host}:{pub.grpc_port}", pub.pub_token, "bystander", 64)
    entries = wire.GrpcEntries(BYSTANDER)
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await publisher.send([entries.entry(time.time_ns())])
        sent += 1
        await asyncio.sleep(BYSTANDER_EVERY)
    tracker.want = sent
    if tracker.received < sent:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(tracker.done), drain)
    stream.close()
    await publisher.close(1.0)
    return {"sent": sent, "received": tracker.received, "latency_ms": percentiles(shared.latencies)}


# -- what the orchestrator reads of the gateway ---------------------------------------------


def channels_gauge(port: int) -> int:
    """`logs_gateway_channels` from /metrics."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=30) as answer:
        text = answer.read().decode()
    line = next(ln for ln in text.splitlines() if ln.startswith("logs_gateway_channels "))
    return int(float(line.split()[1]))


class Sampler:
    """The gateway's RSS and channel count over time, sampled while the orchestrator waits."""

    def __init__(self, server: Server, every: float, churn: Churn) -> None:
        self.server = server
        self.every = every
        self.churn = churn
        self.start = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.start

    def sample(self) -> tuple[float, int, int]:
        point = (self.now(), self.server.rss_kb(), channels_gauge(self.server.http_port))
        self.churn.curve.append(point)
        return point

    def mark(self, what: str) -> float:
        at = self.now()
        self.churn.marks.append((at, what))
        return at

    def until(self, at: float) -> None:
        """Sample until `at` (seconds since the start)."""
        while self.now() < at:
            self.sample()
            time.sleep(max(0.0, min(self.every, at - self.now())))

    def result(self, worker: Worker, bound: float) -> Any:
        """The worker's result, sampling while it comes."""
        deadline = time.monotonic() + bound
        while not worker.conn.poll(self.every):
            self.sample()
            if time.monotonic() > deadline:
                raise TimeoutError(f"no result within {bound} s")
        return worker.expect("result", 1)

    def high(self, since: float, until: float) -> int:
        """Highest RSS sampled between the two times."""
        return max((kb for t, kb, _ in self.churn.curve if since <= t <= until), default=0)


def _publish(target: Target, prefix: str, count: int, rate: int, sampler: Sampler | None) -> int:
    """One entry to each of `count` fresh channels, at `rate`/s (0: as fast as acked);
    returns the entries acknowledged."""
    seconds = count / rate + 60 if rate else 300.0
    plan = Plan(
        "fresh", (prefix,), seconds, 100, rate=rate, streams=2, in_flight=4, tick=0.002, count=count
    )
    with worker_group() as started:
        publisher = Worker(workers.publish, target, plan, None)
        started.append(publisher)
        publisher.expect("ready", 30)
        publisher.send("go")
        bound = seconds + 60
        sent: Result = (
            sampler.result(publisher, bound) if sampler else publisher.expect("result", bound)
        )
    return sent.acks.entries


# -- the phases ---------------------------------------------------------------------------


def lifecycle(churn: Churn, sizes: Sizes, servers: Servers) -> None:
    """Two rounds of fresh channels, and between them a resume from before the first."""
    h = sizes.history_seconds
    servers.label = "churn lifecycle"
    with servers.use(churn.kind, ("--history-seconds", str(h))) as (server, pub, sub):
        sampler = Sampler(server, sizes.sample_every, churn)
        cursor = asyncio.run(_head(sub))
        sampler.until(1.0)  # the baseline
        before = sampler.high(0, sampler.now())
        for number in (1, 2):
            start = sampler.mark(f"round {number}")
            published = _publish(
                pub, f"{WORKSPACE}{number}", sizes.round_channels, sizes.rate, sampler
            )
            end = sampler.now()
            sampler.until(end + 2 * h)
            after = sampler.sample()[2]
            expired = next(
                (t - end for t, _, n in churn.curve if t > end and n <= published / 100), -1.0
            )
            if number == 1:
                sampler.until(end + sizes.pause * h)
                sampler.mark("resume across")
                churn.across["first"] = asyncio.run(_replay(sub, cursor, 0.5, 30))
                again = churn.across["first"]["last_id"] or cursor
                churn.across["again"] = asyncio.run(_replay(sub, again, 0.5, 30))
            high = sampler.high(start, sampler.now())
            churn.rounds.append(
                {
                    "published": published,
                    "growth_kb": high - before,
                    "channels_after": after,
                    "expired_after_s": expired,
                }
            )
            before = max(before, high)


def presence(churn: Churn, sizes: Sizes, servers: Servers) -> None:
    """Costs and loop lag with `few` channels present, then with `round_channels`; a
    watcher of the workspace (a dashboard) is subscribed throughout, as on a live gateway
    (it is what made the gateway before issue 12 keep a route per channel)."""
    servers.label = "churn presence"
    with servers.use(churn.kind) as (server, pub, sub), worker_group() as started:
        cursor = asyncio.run(_head(sub))
        watcher = Worker(workers.subscribe, sub, [WILDCARD], 2, _slot(), 0)
        probe = Worker(workers.probe_health, sub.host, sub.http_port, LAG_EVERY)
        started += [watcher, probe]
        watcher.send("connect", 1)
        watcher.expect("ready", 30)
        probe.expect("ready", 30)
        probe.send("go")
        windows: dict[str, tuple[int, int, float, float]] = {}
        for present in (sizes.few, sizes.round_channels):
            added = present - (sizes.few if present > sizes.few else 0)
            _publish(pub, f"{WORKSPACE}{present}n", added, 0, None)
            churn.resume_ms |= _costs(sub, sizes, cursor, present)
            windows |= _storms(churn, sizes, server, sub, cursor, present)
        probe.send("stop")
        stamps, trips = probe.expect("result", 60)
        watcher.send("go")
        watcher.send("expect", {}, 0.0)
        churn.watched = watcher.expect("result", 60).received
    for name, (begin, end, cpu, wait) in windows.items():
        overlapping = [
            trip for at, trip in zip(stamps, trips, strict=True) if at + trip > begin and at < end
        ]
        seconds = (end - begin) / 1e9
        churn.lag_ms[name] = percentiles(overlapping) | {
            "cpu": cpu / seconds,
            "wait": wait / seconds,
        }


def _costs(sub: Target, sizes: Sizes, cursor: str, present: int) -> dict[str, float]:
    """Median ms of resuming one channel (to its event) and of a wildcard subscribe (to
    `ready`), `probes` of each one after the other."""
    one = f"{WORKSPACE}{sizes.few}n{7:07d}"
    shapes = {"one channel": (one, cursor, 1), "wildcard subscribe": (WILDCARD, "", 0)}
    return {
        f"{what} at {present}": statistics.median(
            _timed(sub, [stream], PROBE_BOUND)[0][0] for _ in range(sizes.probes)
        )
        for what, stream in shapes.items()
    }


def _storms(
    churn: Churn, sizes: Sizes, server: Server, sub: Target, cursor: str, present: int
) -> dict[str, tuple[int, int, float, float]]:
    """Viewers resuming at once: each its own channel, then all the wildcard (from the
    head: nothing to send, all to look at). Returns the windows to read the lag in."""
    viewers = min(sizes.viewers, sizes.few)
    own = [(f"{WORKSPACE}{sizes.few}n{i:07d}", cursor, 1) for i in range(viewers)]
    head = asyncio.run(_head(sub))
    storms = {"idle": [], "one channel each": own, "wildcard": [(WILDCARD, head, 0)] * viewers}
    windows = {}
    for name, streams in storms.items():
        begin, (cpu, wait) = time.monotonic_ns(), server.times()
        if streams:
            took, refused = _timed(sub, streams, STORM_BOUND)
            churn.storm_ms[f"{name} at {present}"] = max(took)
            late = sum(ms >= STORM_BOUND * 1e3 for ms in took) - refused
            churn.storm_late[f"{name} at {present}"] = late
            churn.storm_refused[f"{name} at {present}"] = refused
        else:
            time.sleep(1.0)
        after = server.times()
        windows[f"{name} at {present}"] = (
            begin,
            time.monotonic_ns(),
            after[0] - cpu,
            after[1] - wait,
        )
    return windows


def ingest(churn: Churn, sizes: Sizes, servers: Servers, patterns: int) -> dict[str, Any]:
    """Fresh channels as fast as acked, with `patterns` wildcard patterns open."""
    servers.label = f"churn ingest {patterns}"
    args = ("--history-seconds", str(sizes.history_seconds))
    groups = _pattern_groups(patterns, sizes.patterns_per_stream)
    with servers.use(churn.kind, args) as (_, pub, sub), worker_group() as started:
        if groups:
            viewers = Worker(workers.subscribe, sub, groups, len(groups) + 1, _slot(), 0)
            started.append(viewers)
            viewers.send("connect", len(groups))
            opened = viewers.expect("ready", 300)
        plan = Plan("fresh", (f"{WORKSPACE}i",), sizes.ingest_seconds, 100, streams=2, in_flight=4)
        publisher = Worker(workers.publish, pub, plan, None)
        started.append(publisher)
        publisher.expect("ready", 30)
        publisher.send("go")
        bystander = asyncio.run(_bystander(pub, sub, sizes.ingest_seconds, 10.0))
        sent: Result = publisher.expect("result", sizes.ingest_seconds + 120)
        closed = 0
        if groups:
            viewers.send("go")
            viewers.send("expect", {}, 0.0)
            got: Result = viewers.expect("result", 60)
            closed = got.closed + len(groups) - opened
    seconds = max(1e-9, (sent.last_receive_ns - sent.first_send_ns) / 1e9)
    return {
        "patterns": patterns,
        "streams": len(groups),
        "rate": sent.acks.entries / seconds,
        "refused": sent.acks.errors,
        "viewers_lost": closed,
        "bystander": bystander,
    }


def _slot() -> Any:
    """A subscriber worker's progress slot (nothing here publishes against it)."""
    return multiprocessing.get_context("spawn").Array("q", 1, lock=False)


def _pattern_groups(patterns: int, per_stream: int) -> list[str]:
    """Comma-joined wildcard patterns, `per_stream` to an SSE stream, none matching what
    is published: the two shapes a workspace view opens, one workspace each."""
    texts = [f"logs:*:ws{i}:>" if i % 2 else f"logs:etl:ws{i}:*" for i in range(patterns)]
    return [",".join(texts[i : i + per_stream]) for i in range(0, patterns, per_stream)]


def measure(
    sizes: Sizes, kind: str, tree: Path | None, profile: Path | None, phases: list[str] | None
) -> Churn:
    servers = Servers(True, profile, pattern=RIGHTS, tree=tree)
    churn = Churn(commit(tree or ROOT), kind, sizes=asdict(sizes))
    with servers:
        steps: list[tuple[str, Callable[[], object]]] = [
            ("lifecycle", lambda: lifecycle(churn, sizes, servers)),
            ("presence", lambda: presence(churn, sizes, servers)),
            (
                "ingest, no patterns",
                lambda: churn.ingest.update(none=ingest(churn, sizes, servers, 0)),
            ),
            (
                f"ingest, {sizes.patterns:,} patterns",
                lambda: churn.ingest.update(patterns=ingest(churn, sizes, servers, sizes.patterns)),
            ),
        ]
        for name, step in steps:
            if phases and not any(name.startswith(phase) for phase in phases):
                continue
            started = time.monotonic()
            step()
            churn.load[name] = os.getloadavg()[0]
            print(f"  {churn.server} {name}: {time.monotonic() - started:.1f} s", file=sys.stderr)
    return churn


def commit(tree: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() or tree.name


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench churn", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small and short (a smoke test)")
    parser.add_argument("--against", type=Path, metavar="TREE", help="also a checkout's gateway")
    parser.add_argument("--redis", action="store_true", help="the Redis broker (a private one)")
    parser.add_argument(
        "--nats",
        type=int,
        choices=(1, 3),
        help="the NATS broker: a private cluster of 1 node, or 3 with R3 streams",
    )
    parser.add_argument("--phases", nargs="+", metavar="NAME", help="only these (e.g. presence)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy the gateways into DIR")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    kind = "gateway+redis" if args.redis else "gateway"
    if args.nats:
        kind = "gateway+nats" if args.nats == 1 else "gateway+nats-r3"
    trees = [args.against, None] if args.against else [None]
    results = [measure(sizes, kind, tree, args.profile, args.phases) for tree in trees]
    text = churn_table(results)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "churn.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    (args.out / "churn.md").write_text(text + "\n")
    if plot_churn(results, args.out / "churn.png"):
        print(f"plot: {args.out / 'churn.png'}", file=sys.stderr)
    return 0
