"""Faults of the NATS broker with real processes: a three-node JetStream cluster on loopback
(tests/nats_cluster.py), R3 history, real gateway processes, real gRPC publishers and SSE
viewers.

- `kill -9` of any one node, five times, under load through two gateways: no acked entry
  lost, none doubled, each channel's order kept; publishers keep going once the stream has
  a leader again; gateways reconnect by themselves; open SSE streams continue or end with
  `shutdown` and resume exactly from their cursor.
- Every node and every gateway killed and restarted: history is still there, every entry
  under the cursor it had.

(No NATS at all, `/ready` 503 and UNAVAILABLE at once: tests/test_nats_gateways.py.)

The CI form spends about a minute under load for the five kills (KILL_EVERY seconds
between them); LOGS_GATEWAY_NATS_FAULTS_LONG=1 runs the issue's long form, 60 s of load
around each kill.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.conftest import Running, entry
from tests.nats_cluster import NatsCluster, NatsNode
from tests.sse_client import Stream, open_stream
from tests.test_faults import Node, Producer, history

LONG = os.environ.get("LOGS_GATEWAY_NATS_FAULTS_LONG") == "1"
KILLS = 5
KILL_EVERY = 60.0 if LONG else 12.0  # seconds of load from one kill to the next
DOWN = 4.0  # seconds a killed node stays down (a leader election takes a few)
PRODUCERS = 8  # each on a channel of its own: 8 x 10 entries every ~40 ms, ~2,000/s
PATTERN = "logs:natsfaults:ws1:>"
ENDINGS = {"resync", "draining"}  # a `shutdown` a live stream may get while NATS moves


# R3, and history bounds above what the long form publishes (~140,000 entries a channel,
# ~1.1 M in all), so that history is every acked entry.
RETAIN_ALL = (
    *("--nats-replicas", "3", "--history-entries", "1000000"),
    *("--max-history-bytes", str(4 << 30), "--history-seconds", "7200"),
)


def channel(n: int) -> str:
    return f"logs:natsfaults:ws1:c{n}"


@contextlib.contextmanager
def gateways(cluster: NatsCluster, count: int) -> Iterator[list[Node]]:
    """`count` gateway processes on the cluster, R3 history; stopped on exit."""
    nodes = [Node(cluster.url, *RETAIN_ALL) for _ in range(count)]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stack.close()


def running(node: Node) -> Running:
    assert node.run is not None
    return node.run


@dataclass
class Watcher:
    """An SSE viewer of every channel of the test that follows endings the way a browser
    does: after a `shutdown` or a cut connection it comes back with its last event id."""

    run: Running
    token: str
    events: list[tuple[int, str, str]] = field(default_factory=list)  # (seq, channel, message)
    endings: collections.Counter[str] = field(default_factory=collections.Counter)
    gaps: list[object] = field(default_factory=list)
    last_id: str | None = None
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def follow(self) -> None:
        while True:
            try:
                async with open_stream(
                    self.run.http, PATTERN, self.token, last_event_id=self.last_id
                ) as stream:
                    await self._read(stream)
            except (httpx.HTTPError, StopAsyncIteration):
                self.endings["cut"] += 1
            await asyncio.sleep(0.2)

    async def _read(self, stream: Stream) -> None:
        while True:
            event = await stream.next(timeout=3600)
            if event.id:
                self.last_id = event.id
            if event.event == "ready":
                self.opened.set()
            elif event.event == "log":
                self.events.append((seq_of(event.id), event.data["channel"], event.data["message"]))
            elif event.event == "gap":
                self.gaps.append(event.data)
            elif event.event in ("shutdown", "error"):
                self.endings[event.data["reason"]] += 1
                return

    def messages(self, name: str) -> list[str]:
        """What it saw of channel `name`, without history()'s end markers."""
        return [m for _, c, m in self.events if c == name and not m.startswith("end-")]


async def ready(run: Running) -> int:
    async with httpx.AsyncClient() as client:
        return (await client.get(run.http + "/ready", timeout=5)).status_code


def stream_leader(cluster: NatsCluster) -> NatsNode:
    """The node leading the gateway's stream (the one whose loss moves the leader)."""
    for node in cluster.nodes:
        _, jsz = node.monitor("/jsz?streams=true")
        for account in jsz.get("account_details", []):
            for stream in account.get("stream_detail", []):
                if not stream["name"].startswith("KV_") and stream.get("cluster", {}).get("leader"):
                    return cluster.node(stream["cluster"]["leader"])
    raise AssertionError("no stream has a leader")


async def kill_nodes(cluster: NatsCluster, producers: list[Producer], seed: int) -> list[str]:
    """KILLS kills, one node at a time (the stream's leader every other time, else any
    node), each restarted after DOWN seconds on its own store. Returns what was done and
    asserts that the publishers acked more between each kill and the next."""
    rng, done = random.Random(seed), []
    for kill in range(KILLS):
        await asyncio.sleep(KILL_EVERY - DOWN)
        victim = stream_leader(cluster) if kill % 2 == 0 else rng.choice(cluster.nodes)
        acked = sum(len(p.acked) for p in producers)
        cluster.kill(victim)
        await asyncio.sleep(DOWN)
        await asyncio.to_thread(cluster.restart, victim)
        done.append(f"kill -9 {victim.name}")
        await asyncio.sleep(KILL_EVERY / 4)
        assert sum(len(p.acked) for p in producers) > acked, f"publishing stopped after {done}"
    return done


@pytest.mark.timeout(600 if LONG else 300)
async def test_kill_9_of_any_node_under_load_loses_no_acked_entry_and_doubles_none(
    nats_cluster: NatsCluster,
) -> None:
    seed = random.randrange(2**32)
    with gateways(nats_cluster, 2) as nodes:
        runs = [running(n) for n in nodes]
        viewer = runs[0].token("viewer", subscribe=[PATTERN])
        watchers = [Watcher(run, viewer) for run in runs]
        following = [asyncio.create_task(w.follow()) for w in watchers]
        for watcher in watchers:  # before the first entry, so each must see them all
            await asyncio.wait_for(watcher.opened.wait(), 10)
        producers = under_load(runs[0], [n.target for n in nodes])
        stop = asyncio.Event()
        started = time.monotonic()
        publishing = [asyncio.create_task(p.run(stop)) for p in producers]
        try:
            faults = await kill_nodes(nats_cluster, producers, seed)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*publishing), 60)
            rate = sum(len(p.acked) for p in producers) / (time.monotonic() - started)
            stored = {
                p.channel: await history(runs[n % 2], p.channel) for n, p in enumerate(producers)
            }
            await wait_watchers(watchers, stored)
        finally:
            for task in (*following, *publishing):
                task.cancel()
        context = f"seed {seed}, {', '.join(faults)}, {rate:.0f} entries/s acked"
        for producer in producers:
            assert stored[producer.channel] == producer.acked, (
                f"{producer.channel}: history is not every acked entry once, in order ({context})"
            )
        for watcher in watchers:
            assert_saw_history_exactly(watcher, stored, context)
        for run in runs:  # both gateways reconnected by themselves, and ended no stream in error
            assert await ready(run) == 200, context
            assert ended_in_error(await metrics(run)) == 0, context
        assert rate > 500, f"not the load this test is for ({context})"


def under_load(run: Running, targets: list[str]) -> list[Producer]:
    """PRODUCERS publishers, each to a channel of its own through either gateway (half
    start on each): batches of 20 every ~40 ms, about 2,000 entries/s in all here."""
    return [
        Producer(
            f"p{n}",
            run.token(f"svc{n}", publish=[PATTERN]),
            targets[n % 2 :] + targets[: n % 2],
            channel(n),
            size=20,
            pause=0.03,
        )
        for n in range(PRODUCERS)
    ]


def assert_saw_history_exactly(
    watcher: Watcher, stored: dict[str, list[str]], context: str
) -> None:
    """Each channel's entries, once each and in order, under ever-growing cursors; no gap;
    only the endings a stream may get while NATS moves (or a cut it resumed from)."""
    for name, messages in stored.items():
        seen = watcher.messages(name)
        doubled = sorted(m for m, n in collections.Counter(seen).items() if n > 1)
        assert seen == messages, (
            f"a viewer of {name} saw {len(seen)} entries, history holds {len(messages)}; "
            f"doubled: {doubled[:5]}, missing: {sorted(set(messages) - set(seen))[:5]} ({context})"
        )
    seqs = [seq for seq, _, _ in watcher.events]
    assert seqs == sorted(set(seqs)), f"a viewer's cursors went back ({context})"
    assert watcher.gaps == [], context
    assert set(watcher.endings) <= ENDINGS | {"cut"}, (watcher.endings, context)


async def metrics(run: Running) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(run.http + "/metrics", timeout=5)).text


def ended_in_error(text: str) -> float:
    match = re.search(r'^logs_gateway_streams_ended_total\{reason="error"\} (\S+)$', text, re.M)
    return float(match[1]) if match else 0.0


async def wait_watchers(watchers: list[Watcher], stored: dict[str, list[str]]) -> None:
    """Until every viewer has as many entries of each channel as history (or 60 s)."""
    deadline = time.monotonic() + 60
    for watcher in watchers:
        while time.monotonic() < deadline and any(
            len(watcher.messages(c)) < len(m) for c, m in stored.items()
        ):
            await asyncio.sleep(0.1)


async def read_log(run: Running, after: str, n: int) -> list[tuple[str, str]]:
    """(id, message) of the next `n` log events after cursor `after`."""
    token = run.token("reader", subscribe=[PATTERN])
    async with open_stream(run.http, PATTERN, token, last_event_id=after) as stream:
        return [(e.id, e.data["message"]) for e in await stream.take(n, timeout=20)]


async def test_every_node_and_gateway_restarted_keeps_history_under_the_same_cursors(
    nats_cluster: NatsCluster,
) -> None:
    with gateways(nats_cluster, 1) as (node,):
        run = running(node)
        token = run.token("svc", publish=[PATTERN])
        for n in range(4):
            batches = [[entry(channel(n), f"m{n}.{b}.{i}") for i in range(10)] for b in range(5)]
            await run.publish(token, batches, producer=f"before{n}")
        async with open_stream(run.http, PATTERN, run.token(subscribe=[PATTERN])) as live:
            epoch = (await live.next()).id.split("-")[0]
        before = await read_log(run, f"{epoch}-0", 200)
        for nats_node in nats_cluster.nodes:
            nats_cluster.kill(nats_node)
        node.stop(signal.SIGKILL)
        await asyncio.to_thread(nats_cluster.start)
        node.start()
        run = running(node)
        assert await read_log(run, f"{epoch}-0", 200) == before
        middle = before[99][0]
        assert await read_log(run, middle, 100) == before[100:]
        await run.publish(run.token("svc", publish=[PATTERN]), [[entry(channel(0), "after")]], "x")
        ((cursor, message),) = await read_log(run, before[-1][0], 1)
        assert message == "after" and seq_of(cursor) > seq_of(before[-1][0])


def seq_of(cursor: str) -> int:
    return int(cursor.rsplit("-", 1)[1])
