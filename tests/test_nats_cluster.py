"""The NATS test cluster itself (tests/nats_cluster.py): three JetStream nodes that elect a
meta leader, keep one when any node is killed with `kill -9`, take the node back on its own
store, and keep an R3 stream's acked messages through all of it. The broker's fault tests
rely on exactly this."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats
import nats.errors
from nats.js import JetStreamContext

from tests.nats_cluster import NatsCluster, NatsNode, running_nats


async def publish(js: JetStreamContext, body: bytes, timeout: float = 20) -> int:
    """Publish until JetStream acks (a stream without a leader refuses for a moment after
    a kill); return the message's stream sequence."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return (await js.publish("t.a", body, timeout=2)).seq
        except (nats.errors.Error, TimeoutError):  # no responders, no leader yet, a timeout
            assert time.monotonic() < deadline, "the stream took no publish after the kill"
            await asyncio.sleep(0.1)


def stored(node: NatsNode) -> int:
    """Messages of stream T in this node's own replica."""
    _, jsz = node.monitor("/jsz?streams=true")
    details = [s for a in jsz["account_details"] for s in a["stream_detail"]]
    return int(next(s for s in details if s["name"] == "T")["state"]["messages"])


async def replicas_hold(cluster: NatsCluster, messages: int, timeout: float = 20) -> None:
    """Wait until every node's replica of T holds `messages` (a follower outside the
    quorum may apply the last ones a moment after the ack)."""
    deadline = time.monotonic() + timeout
    while (counts := [stored(node) for node in cluster.nodes]) != [messages] * len(cluster.nodes):
        assert time.monotonic() < deadline, f"replicas hold {counts}, not {messages} each"
        await asyncio.sleep(0.1)


async def test_a_three_node_cluster_keeps_a_leader_and_its_data_through_a_kill(
    nats_cluster: NatsCluster,
) -> None:
    client = await nats.connect(nats_cluster.url.split(","), max_reconnect_attempts=-1)
    try:
        js = client.jetstream()
        await js.add_stream(name="T", subjects=["t.>"], num_replicas=3)
        assert [await publish(js, b"before") for _ in range(10)] == list(range(1, 11))
        victim = nats_cluster.node(nats_cluster.wait_ready())  # the meta leader itself
        nats_cluster.kill(victim)
        assert not victim.running
        survivor_leader = nats_cluster.wait_ready()
        assert survivor_leader != victim.name
        assert [await publish(js, b"during") for _ in range(10)] == list(range(11, 21))
        nats_cluster.restart(victim)
        await replicas_hold(nats_cluster, 20)
    finally:
        await client.close()


async def test_a_whole_cluster_killed_and_restarted_keeps_its_stream(tmp_path: Path) -> None:
    with running_nats(tmp_path, 3) as cluster:
        client = await nats.connect(cluster.url.split(","))
        js = client.jetstream()
        await js.add_stream(name="T", subjects=["t.>"], num_replicas=3)
        for _ in range(5):
            await publish(js, b"kept")
        await client.close()
        await replicas_hold(cluster, 5)
        for node in cluster.nodes:
            cluster.kill(node)
        cluster.start()  # every node on its own store again
        await replicas_hold(cluster, 5)
        client = await nats.connect(cluster.url.split(","))
        try:
            state = await stream_state(client.jetstream())
        finally:
            await client.close()
        assert state == (1, 5)


async def stream_state(js: JetStreamContext, timeout: float = 30) -> tuple[int, int]:
    """Stream T's first and last seq, once it has a leader to answer (after every node
    restarted, the replicas hold the data before the stream has elected one)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            info = await js.stream_info("T")
            return info.state.first_seq, info.state.last_seq
        except (nats.errors.Error, TimeoutError):  # no leader yet: no answer, or a timeout
            assert time.monotonic() < deadline, "stream T answered nothing after the restart"
            await asyncio.sleep(0.2)


async def test_a_single_node_serves_jetstream(nats_server: NatsCluster) -> None:
    client = await nats.connect(nats_server.url)
    try:
        info = await client.jetstream().account_info()
        assert info.limits is not None
        assert nats_server.nodes[0].meta_leader() == "n0"
    finally:
        await client.close()
