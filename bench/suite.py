"""The scenarios of the suite, their sizes (full and --quick), and the servers they run on.

Each scenario runs on a fresh server (--quick shares one per kind of server, to stay
short), so what one scenario leaves in memory never flatters the next.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from bench import profiles, scenarios, servers
from bench.scenarios import Row
from bench.servers import Server
from bench.workers import Plan, Target
from gateway.core.tokens import Signer

ISSUER = AUDIENCE = "logs-gateway"
PATTERN = "logs:bench:>"
# Windows each run gets in rows measured in turns with others (the CPU of a POST, or of an
# entry over HTTP and gRPC, compared under the same conditions: scenarios.ingest_in_turns).
TURNS = 5


@dataclass(frozen=True)
class Sizes:
    fanout_subscribers: int = 1000
    fanout_seconds: float = 5.0
    # Single-entry HTTP POSTs kept in flight on one pipelined connection ("post" rows: the
    # gateway's POST /api/logs/publish, nchan's publisher, a bare aiohttp JSON handler).
    post_in_flight: int = 16
    # Connections of the C POST publisher (bench/post_load.c) in the post floods, each with
    # `post_in_flight` POSTs (a channel's POSTs all on one, so they arrive in order).
    post_connections: int = 4
    # Entries per gRPC request when publishing as fast as possible, as the SDK batches
    # (nchan: one per POST, it has no batch publish). `small_batch` rows show 10.
    fanout_batch: int = 100
    small_batch: int = 10
    window: int = 200  # entries per channel the publisher may be ahead of the slowest reader
    latency_subscribers: int = 100
    latency_rate: int = 1000
    latency_seconds: float = 10.0
    # The publisher sends what is due every 5 ms, as one request (an SDK gathers entries
    # for 20 ms by default); each entry is timestamped when its request is sent.
    latency_tick: float = 0.005
    channels: int = 1000
    channels_seconds: float = 5.0
    idle_connections: int = 10_000
    idle_steps: int = 10
    ingest_seconds: float = 3.0
    scaling: tuple[int, ...] = (100, 250, 500, 2000)  # besides fanout_subscribers
    scaling_seconds: float = 3.0
    processes: int = 2  # subscriber processes of the load generator


FULL = Sizes()
QUICK = Sizes(
    fanout_subscribers=20,
    fanout_seconds=0.2,
    latency_subscribers=10,
    latency_rate=200,
    latency_seconds=0.3,
    channels=20,
    channels_seconds=0.2,
    idle_connections=100,
    idle_steps=2,
    ingest_seconds=0.2,
    scaling=(10,),
    scaling_seconds=0.2,
    processes=1,
)


class Servers:
    """Starts the servers a scenario asks for, by kind; `fresh` restarts them per scenario."""

    def __init__(
        self,
        fresh: bool,
        profile: Path | None = None,
        gateway_args: tuple[str, ...] = (),
        *,
        pattern: str = PATTERN,
        tree: Path | None = None,
        nats_core: int = servers.SERVER_CORE,
    ) -> None:
        self.fresh = fresh
        self.nats_core = nats_core  # where the NATS nodes run (the gateway's core or not)
        self.gateway_args = gateway_args  # extra `logs-gateway serve` flags
        self.profile = profile  # py-spy every gateway into this folder
        self.tree = tree  # the checkout whose gateway runs (None: this one)
        self.label = ""  # the step running now (names its profiles)
        self.secret = secrets.token_hex(32)
        signer = Signer(secret=self.secret.encode(), issuer=ISSUER, audience=AUDIENCE)
        self.sub_token = signer.mint("bench-reader", subscribe=[pattern], ttl=6 * 3600)
        self.pub_token = signer.mint("bench-service", publish=[pattern], ttl=6 * 3600)
        self._stack = contextlib.ExitStack()
        self._running: dict[tuple[str, tuple[str, ...]], tuple[Server, Target, Target]] = {}

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @contextlib.contextmanager
    def use(self, kind: str, args: tuple[str, ...] = ()) -> Iterator[tuple[Server, Target, Target]]:
        """(server, publisher's target, subscribers' target) of a kind of deployment;
        `args`: `serve` flags of this use besides `gateway_args`."""
        with contextlib.ExitStack() as stack:
            if self.fresh:
                running = self._start(kind, args, stack)
            else:
                if (kind, args) not in self._running:
                    self._running[kind, args] = self._start(kind, args, self._stack)
                running = self._running[kind, args]
            if self.profile is not None and running[0].python_pids:
                pids = running[0].python_pids
                stack.enter_context(profiles.sampling(self.profile, self.label, pids))
            yield running

    def _start(
        self, kind: str, args: tuple[str, ...], stack: contextlib.ExitStack
    ) -> tuple[Server, Target, Target]:
        if kind == "nchan":
            nchan = stack.enter_context(servers.nchan())
            target = Target("nchan", servers.HOST, nchan.http_port)
            return nchan, target, target
        if kind == "aiohttp":
            bare = stack.enter_context(servers.bare_http())
            target = Target("aiohttp", servers.HOST, bare.http_port)
            return bare, target, target
        parts: list[Server] = []
        broker, args = self._broker(kind, stack, parts, args)
        count = 2 if kind.startswith("2 gateways") else 1
        parts += [
            stack.enter_context(
                servers.gateway(self.secret, broker, (*self.gateway_args, *args), self.tree)
            )
            for _ in range(count)
        ]
        first, last = parts[-count], parts[-1]
        whole = Server(kind, last.http_port, last.grpc_port)
        for part in parts:
            whole.pids += part.pids
            whole.python_pids += part.python_pids
        return whole, self._target(first), self._target(last)

    def _broker(
        self, kind: str, stack: contextlib.ExitStack, parts: list[Server], args: tuple[str, ...]
    ) -> tuple[str, tuple[str, ...]]:
        """The `--broker` of a kind ("gateway": memory, "...+redis", "...+nats" with one
        node, "...+nats-r3" with three and R3 streams), its server started into `parts`,
        and the `serve` flags it adds."""
        if kind.endswith("+redis"):
            redis = stack.enter_context(servers.redis())
            parts.append(redis)
            return f"redis://{servers.HOST}:{redis.http_port}/0", args
        if "+nats" in kind:
            replicas = 3 if kind.endswith("-r3") else 1
            nats = stack.enter_context(servers.nats(replicas, self.nats_core))
            parts.append(nats)
            return nats.url, (*args, "--nats-replicas", str(replicas))
        return "memory", args

    def _target(self, gateway: Server) -> Target:
        return Target(
            "gateway",
            servers.HOST,
            gateway.http_port,
            gateway.grpc_port,
            self.sub_token,
            self.pub_token,
        )


def _run_id() -> str:
    return f"r{time.monotonic_ns() % 10**12}"


@dataclass
class Suite:
    sizes: Sizes
    servers: Servers
    kinds: tuple[str, ...]  # the kinds of server to compare: "gateway", "nchan"
    redis: bool = True
    nats: bool = True
    rows: list[Row] = field(default_factory=list)

    def fanout(
        self,
        kind: str,
        subscribers: int,
        seconds: float = 0.0,
        name: str = "fan-out",
        batch: int = 0,
        post: bool = False,
    ) -> Row:
        s = self.sizes
        seconds = seconds or s.fanout_seconds
        with self.servers.use(kind) as (server, pub, sub):
            channel = sub.channel(_run_id(), 0)
            batch = 1 if post else batch or s.fanout_batch
            plan = Plan("flood", (channel,), seconds, batch, s.window, in_flight=8)
            if post:
                plan = self._posts(plan)
            subs = [channel] * subscribers
            return scenarios.deliveries(name, server, sub, subs, plan, pub, processes=s.processes)

    def latency(self, kind: str, name: str = "latency", post: bool = False) -> Row:
        s = self.sizes
        with self.servers.use(kind) as (server, pub, sub):
            channel = sub.channel(_run_id(), 0)
            plan = Plan(
                "paced",
                (channel,),
                s.latency_seconds,
                rate=s.latency_rate,
                in_flight=64,
                tick=s.latency_tick,
                http=post,
            )
            subscribers = [channel] * s.latency_subscribers
            return scenarios.deliveries(
                name, server, sub, subscribers, plan, pub, processes=s.processes
            )

    def _posts(self, plan: Plan) -> Plan:
        """`plan` as single-entry POSTs from the C publisher (bench/post_load.c)."""
        s = self.sizes
        return replace(
            plan, batch=1, in_flight=s.post_in_flight, http=True, connections=s.post_connections
        )

    def channels(
        self, kind: str, name: str = "channels", batch: int = 0, post: bool = False
    ) -> Row:
        s = self.sizes
        with self.servers.use(kind) as (server, pub, sub):
            run = _run_id()
            names = tuple(sub.channel(run, i) for i in range(s.channels))
            batch = batch or s.fanout_batch
            plan = Plan("flood", names, s.channels_seconds, batch, s.window, in_flight=8)
            if post:
                plan = self._posts(plan)
            subs = list(names)
            return scenarios.deliveries(name, server, sub, subs, plan, pub, processes=s.processes)

    def idle(self, kind: str) -> Row:
        s = self.sizes
        with self.servers.use(kind) as (server, _, sub):
            return scenarios.idle(
                "idle", server, sub, s.idle_connections, s.idle_steps, s.processes
            )

    def ingest(self, kind: str, batch: int, streams: int) -> Row:
        with self.servers.use(kind) as (server, pub, _):
            channel = pub.channel(_run_id(), 0)
            in_flight = max(2, 64 // batch)
            plan = Plan(
                "ingest", (channel,), self.sizes.ingest_seconds, batch, 0, 0, streams, in_flight
            )
            processes = min(2, streams, self.sizes.processes)
            name = f"ingest b{batch} x{streams}"
            return scenarios.ingest(name, server, pub, plan, processes)

    def interest(self, kind: str) -> Row:
        """Two gateways: one viewer of a quiet channel on the second, while the first ingests
        flat out to another channel; the row's CPU is the viewer's gateway alone, read over
        three ingest windows (a process's CPU time counts in 10 ms ticks)."""
        with self.servers.use(kind) as (server, pub, sub):
            run = _run_id()
            busy, quiet = pub.channel(run, 0), sub.channel(run, 1)
            seconds = self.sizes.ingest_seconds * 3
            plan = Plan("ingest", (busy,), seconds, 100, 0, 0, 1, in_flight=2)
            return scenarios.interest("interest", server, sub, quiet, plan, pub)

    def post_ingest(self, kinds: tuple[str, ...]) -> list[Row]:
        """Single-entry POSTs as fast as `post_in_flight` allows, on every kind in turns:
        the CPU a POST costs each, under the same conditions."""
        s = self.sizes
        seconds = s.ingest_seconds * TURNS
        with contextlib.ExitStack() as stack:
            runs = []
            for kind in kinds:
                server, pub, _ = stack.enter_context(self.servers.use(kind))
                channels = (pub.channel(_run_id(), 0),)
                plan = Plan("ingest", channels, seconds, 1, 0, 0, 1, s.post_in_flight, http=True)
                runs.append(("ingest post", server, pub, plan))
            return scenarios.ingest_in_turns(runs, TURNS)

    def batch_bodies(self, batch: int) -> list[Row]:
        """`{"entries": [...]}` bodies of `batch` entries and gRPC batches of as many, in
        turns on one gateway: what an entry costs each way."""
        with self.servers.use("gateway") as (server, pub, _):
            channels = (pub.channel(_run_id(), 0),)
            plan = Plan("ingest", channels, self.sizes.ingest_seconds * TURNS, batch, in_flight=2)
            runs = [
                (f"ingest b{batch} post", server, pub, replace(plan, http=True)),
                (f"ingest b{batch} grpc", server, pub, plan),
            ]
            return scenarios.ingest_in_turns(runs, TURNS)


Step = tuple[str, Callable[[], Row | list[Row]]]  # a step of servers in turns: a row each


def plan_all(suite: Suite) -> list[Step]:
    """Every scenario of a run, in order: (label, how to run it)."""
    s = suite.sizes
    steps: list[Step] = []
    for kind in suite.kinds:
        steps += [
            (f"idle on {kind}", partial(suite.idle, kind)),
            (f"fan-out on {kind}", partial(suite.fanout, kind, s.fanout_subscribers)),
            (f"latency on {kind}", partial(suite.latency, kind)),
            (f"channels on {kind}", partial(suite.channels, kind)),
        ]
    steps += _post_steps(suite)
    small = f"b{s.small_batch}"
    steps += [
        (
            f"fan-out {small} on gateway",
            partial(
                suite.fanout,
                "gateway",
                s.fanout_subscribers,
                name=f"fan-out {small}",
                batch=s.small_batch,
            ),
        ),
        (
            f"channels {small} on gateway",
            partial(suite.channels, "gateway", f"channels {small}", s.small_batch),
        ),
    ]
    for batch in (1, 10, 100):
        for streams in (1, 8):
            label = f"ingest b{batch} x{streams}"
            steps.append((label, partial(suite.ingest, "gateway", batch, streams)))
    if suite.redis:
        steps += _redis_steps(suite)
    if suite.nats:
        steps += _nats_steps(suite)
    for n in s.scaling:
        for kind in suite.kinds:
            run = partial(suite.fanout, kind, n, s.scaling_seconds, f"scaling {n}")
            steps.append((f"scaling {n} on {kind}", run))
    return steps


def _post_steps(suite: Suite) -> list[Step]:
    """One POST per entry on every server that takes them, side by side: the same work for
    the gateway as for nchan (fan-out and channels floods from the C publisher), and the CPU
    of a POST against a bare aiohttp handler."""
    s = suite.sizes
    steps: list[Step] = []
    for kind in suite.kinds:
        fanout = partial(suite.fanout, kind, s.fanout_subscribers, name="fan-out post", post=True)
        steps += [
            (f"fan-out post on {kind}", fanout),
            (f"latency post on {kind}", partial(suite.latency, kind, "latency post", post=True)),
            (f"channels post on {kind}", partial(suite.channels, kind, "channels post", post=True)),
        ]
    kinds = (*suite.kinds, "aiohttp")
    steps.append((f"ingest post on {', '.join(kinds)}", partial(suite.post_ingest, kinds)))
    batch = suite.sizes.fanout_batch
    label = f"ingest b{batch} post and grpc on gateway"
    steps.append((label, partial(suite.batch_bodies, batch)))
    return steps


def _redis_steps(suite: Suite) -> list[Step]:
    """The same with the Redis broker, and across two gateways sharing it."""
    s = suite.sizes
    redis, cross = "gateway+redis", "2 gateways+redis"
    fanout = partial(suite.fanout, subscribers=s.fanout_subscribers)
    return [
        ("fan-out on redis", partial(fanout, redis)),
        ("latency on redis", partial(suite.latency, redis)),
        ("channels on redis", partial(suite.channels, redis)),
        ("ingest b1 x1 on redis", partial(suite.ingest, redis, 1, 1)),
        ("ingest b100 x1 on redis", partial(suite.ingest, redis, 100, 1)),
        ("ingest b100 x8 on redis", partial(suite.ingest, redis, 100, 8)),
        ("cross-instance latency", partial(suite.latency, cross, "cross-instance latency")),
        ("cross-instance fan-out", partial(fanout, cross, name="cross fan-out")),
    ]


def _nats_steps(suite: Suite) -> list[Step]:
    """The NATS broker: ingest at batches of 100 on one node and on three (R3), beside the
    memory broker's `ingest b100 x1` of the same run; fan-out, latency and cross-instance
    latency on R3; and interest (what a gateway spends on traffic none of its viewers
    watch) on NATS against Redis."""
    s = suite.sizes
    r1, r3, cross = "gateway+nats", "gateway+nats-r3", "2 gateways+nats-r3"
    steps: list[Step] = [
        ("ingest b100 x1 on nats", partial(suite.ingest, r1, 100, 1)),
        ("ingest b100 x1 on nats r3", partial(suite.ingest, r3, 100, 1)),
        ("ingest b100 x8 on nats r3", partial(suite.ingest, r3, 100, 8)),
        ("fan-out on nats r3", partial(suite.fanout, r3, s.fanout_subscribers)),
        ("latency on nats r3", partial(suite.latency, r3)),
        (
            "cross-instance latency on nats r3",
            partial(suite.latency, cross, "cross-instance latency"),
        ),
        (  # one node, like the one Redis: what three nodes on the server core add
            "cross-instance latency on nats r1",
            partial(suite.latency, "2 gateways+nats", "cross-instance latency"),
        ),
        ("interest on nats r3", partial(suite.interest, cross)),
    ]
    if suite.redis:
        steps.append(("interest on redis", partial(suite.interest, "2 gateways+redis")))
    return steps
