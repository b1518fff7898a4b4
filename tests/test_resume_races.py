"""Resume exactness end to end, with publishes racing every resume (the product's central
promise: a client that reconnects with Last-Event-ID gets each entry once, in order).

A real gateway process per broker. SSE readers keep dropping their connection a few live
events past what they missed and reconnecting with the last id they read, while three
publishers stream batches (a batch every 5 ms each, over gRPC) to the two channels the
readers follow and to one they do not. Each reader must end up with exactly the entries
published after it first connected, in seq order: none twice (a replayed entry also
delivered live), none lost (a live entry dropped as if replayed), no gap. The moments that
decide it (entries stored while a resume reads history, or still queued in the hub when
it switches to live) come by the dozen among the ~200 resumes of a run; a final marker
entry ends each reader, so an entry sent twice cannot arrive after the check.

The brokers are parameters: one that joins adds a case to BROKERS.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

import grpc
import httpx
import pytest
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

from gateway.core.cursor import decode_cursor
from tests.conftest import Running, entry, gateway_process
from tests.nats_cluster import running_nats
from tests.redis_server import running_redis
from tests.sse_client import open_stream, stream_client

FOLLOWED = ("logs:race:ws1:a", "logs:race:ws1:b")
UNFOLLOWED = "logs:race:ws2:c"
PUBLISHERS = 3
TRANSPORTS = ("sse", "sse", "grpc")  # one reader each
BATCHES, PAUSE = 400, 0.005  # per publisher: batches of 1-3 entries, a pause after each
MOST_LIVE = 30  # events a reader takes past the replay before it drops its connection
MOST_PER_CONNECTION = 100
MARKER = "the last entry"
# Keep every entry of the run, so that a reader behind is sent all it missed (no gap).
SETTINGS = ("--history-entries", str(PUBLISHERS * BATCHES * 3 + 1))


@contextlib.contextmanager
def memory_gateway(folder: Path) -> Iterator[Running]:
    with gateway_process(*SETTINGS) as run:
        yield run


@contextlib.contextmanager
def redis_gateway(folder: Path) -> Iterator[Running]:
    with running_redis(folder) as redis, gateway_process("--broker", redis.url, *SETTINGS) as run:
        yield run


@contextlib.contextmanager
def nats_gateway(folder: Path) -> Iterator[Running]:
    with (
        running_nats(folder, size=1) as nats,
        gateway_process("--broker", nats.url, *SETTINGS) as run,
    ):
        yield run


BROKERS: dict[str, Callable[[Path], contextlib.AbstractContextManager[Running]]] = {
    "memory": memory_gateway,
    "redis": redis_gateway,
    "nats": nats_gateway,
}


@pytest.fixture(params=list(BROKERS))
def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Running]:
    with BROKERS[request.param](tmp_path) as run:
        yield run


@dataclass
class Acked:
    """The newest seq of a followed channel acked to a publisher (threads move it on; a
    lost race between two leaves it a little behind, which only shortens a connection)."""

    newest: int = 0


@dataclass(frozen=True)
class Item:
    """What a connection gave, in either transport's terms: `ready`, `log` or `ping`."""

    kind: str
    cursor: str
    channel: str = ""
    message: str = ""


Row = tuple[int, str, str]  # seq, channel, message


@dataclass
class Reader:
    """One client that reconnects after every few events, resuming where it stopped: over
    SSE with Last-Event-ID, or over gRPC Subscribe with its cursor."""

    run: Running
    transport: str
    token: str
    rng: Random
    acked: Acked
    rows: list[Row] = field(default_factory=list)
    start: int = -1  # the seq it first connected at (its live start's cursor)
    connections: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def follow(self) -> None:
        """Read until the marker, reconnecting each time from the last cursor read."""
        cursor = ""
        async with (
            stream_client() as client,
            grpc.aio.insecure_channel(self.run.grpc_target) as channel,
        ):
            while not self.ended():
                through = self.acked.newest
                if self.transport == "sse":
                    cursor = await self._over_sse(client, cursor, through)
                else:
                    cursor = await self._over_grpc(channel, cursor, through)

    async def _over_sse(self, client: httpx.AsyncClient, cursor: str, through: int) -> str:
        channels = ",".join(FOLLOWED)
        async with open_stream(
            self.run.http, channels, self.token, last_event_id=cursor, client=client
        ) as stream:

            async def items() -> AsyncIterator[Item]:
                while True:
                    event = await stream.next(timeout=30, pings=True)
                    data = event.data or {}
                    kind = "ping" if event.event == "message" and not data else event.event
                    yield Item(kind, event.id, data.get("channel", ""), data.get("message", ""))

            return await self._read(items(), cursor, through)

    async def _over_grpc(self, channel: grpc.aio.Channel, cursor: str, through: int) -> str:
        request = pb.SubscribeRequest(channels=list(FOLLOWED), cursor=cursor)
        metadata = [("authorization", f"Bearer {self.token}")]
        call = pb_grpc.LogStreamStub(channel).Subscribe(request, metadata=metadata)

        async def items() -> AsyncIterator[Item]:
            while True:
                event = await asyncio.wait_for(call.read(), 30)
                kind = event.WhichOneof("kind") or "ping"
                kind = "log" if kind == "entry" else kind
                yield Item(kind, event.cursor, event.entry.entry.channel, event.entry.entry.body)

        try:
            return await self._read(items(), cursor, through)
        finally:
            call.cancel()

    async def _read(self, items: AsyncIterator[Item], cursor: str, through: int) -> str:
        """One connection: its `ready`, then through the replay (up to `through`, the newest
        entry acked when it connected) and a few live events, or MOST_PER_CONNECTION events;
        the cursor it leaves at."""
        ready = await anext(items)
        assert ready.kind == "ready", ready
        if not cursor:
            self.start = seq_of(ready.cursor)
            self.connected.set()
        cursor = ready.cursor or cursor
        self.connections += 1
        live = self.rng.randint(0, MOST_LIVE)  # events to take past `through`
        for _ in range(MOST_PER_CONNECTION):  # a reader far behind catches up in turns
            if self.ended():
                break
            if seq_of(cursor) >= through:
                if live == 0:
                    break
                live -= 1
            item = await anext(items)
            if item.kind == "log":
                self.rows.append((seq_of(item.cursor), item.channel, item.message))
            else:  # a heartbeat moves the cursor; nothing else may come (no gap here)
                assert item.kind == "ping", item
            cursor = item.cursor or cursor
        return cursor

    def ended(self) -> bool:
        return bool(self.rows) and self.rows[-1][2] == MARKER


def seq_of(event_id: str) -> int:
    cursor = decode_cursor(event_id)
    assert cursor is not None, event_id
    return cursor.seq


Stored = dict[int, tuple[str, str]]  # seq -> (channel, message)


def publish(run: Running, token: str, name: str, batches: int, acked: Acked) -> Stored:
    """Send `batches` batches of 1-3 entries over the three channels on one gRPC stream,
    a batch every PAUSE, so that they keep coming while the readers reconnect. Blocking:
    the publishers run in threads, apart from the readers' event loop."""
    rng = Random(name)
    channels = itertools.cycle((*FOLLOWED, UNFOLLOWED))
    numbers = itertools.count()
    sent: list[pb.PublishRequest] = []

    def requests() -> Iterator[pb.PublishRequest]:
        for n in range(1, batches + 1):
            texts = [f"{name}-{next(numbers)}" for _ in range(rng.randint(1, 3))]
            sent.append(
                pb.PublishRequest(
                    producer_id=name,
                    sequence=n,
                    entries=[entry(next(channels), text) for text in texts],
                )
            )
            yield sent[-1]
            time.sleep(PAUSE)

    stored: Stored = {}
    with grpc.insecure_channel(run.grpc_target) as channel:
        metadata = [("authorization", f"Bearer {token}")]
        acks = pb_grpc.LogIngestStub(channel).Publish(requests(), metadata=metadata)
        for i, ack in enumerate(acks):
            for request_entry, result in zip(sent[i].entries, ack.results, strict=True):
                assert result.code == 0, result
                seq = seq_of(result.cursor)
                stored[seq] = (request_entry.channel, request_entry.body)
                if request_entry.channel in FOLLOWED:
                    acked.newest = max(acked.newest, seq)
    return stored


async def test_every_reader_gets_each_entry_once_in_order_through_racing_resumes(
    gateway: Running,
) -> None:
    acked = Acked()
    rights = list(FOLLOWED)
    readers = [
        Reader(gateway, transport, gateway.token(f"r{r}", subscribe=rights), Random(r), acked)
        for r, transport in enumerate(TRANSPORTS)
    ]
    following = [asyncio.create_task(r.follow()) for r in readers]
    await asyncio.wait_for(asyncio.gather(*(r.connected.wait() for r in readers)), 30)
    token = gateway.token("race", publish=["logs:race:>"])
    stored: Stored = {}
    for part in await asyncio.gather(
        *(
            asyncio.to_thread(publish, gateway, token, f"p{p}", BATCHES, acked)
            for p in range(PUBLISHERS)
        )
    ):
        stored |= part
    marker = entry(FOLLOWED[0], MARKER)
    (ack,) = await gateway.publish(token, [[marker]], producer="marker")
    stored[seq_of(ack.results[0].cursor)] = (FOLLOWED[0], MARKER)
    await asyncio.wait_for(asyncio.gather(*following), 120)
    for reader in readers:
        wanted = [
            (seq, *stored[seq])
            for seq in sorted(stored)
            if seq > reader.start and stored[seq][0] in FOLLOWED
        ]
        got = reader.rows
        assert got == wanted, first_difference(got, wanted)
        assert reader.connections >= 10, reader.connections  # the resumes raced the publishes


def first_difference(got: list[Row], wanted: list[Row]) -> str:
    """What went wrong, in a line: entries twice, entries missing, where the two part."""
    seqs = [row[0] for row in got]
    missing = sorted({row[0] for row in wanted} - set(seqs))
    at = next(
        (i for i, (g, w) in enumerate(zip(got, wanted, strict=False)) if g != w),
        min(len(got), len(wanted)),
    )
    return (
        f"{len(seqs) - len(set(seqs))} entries twice, {len(missing)} missing "
        f"(first {missing[:5]}); from #{at} got {got[at : at + 3]}, wanted {wanted[at : at + 3]}"
    )
