"""One `LogIngest.Publish` stream, and the channel streams run on: batches written in
order, each ack matched to the batch it answers, strictly. The gateway answers a stream's
requests one by one, in order, so an ack is for the oldest batch in flight with one result
per entry; anything else is a ProtocolError and none of it counts as stored."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from logs_gateway.batcher import Batch
from logs_gateway.errors import ProtocolError
from logs_gateway.options import Options
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc


@dataclass(frozen=True, slots=True)
class Answer:
    """An ack matched to its batch: each entry paired with its result."""

    batch: Batch
    results: list[tuple[pb.LogEntry, pb.EntryResult]]
    duplicate: bool  # the batch had been stored before (a resend): stored once


class Connection:
    def __init__(self, channel: grpc.aio.Channel, token: str) -> None:
        self.call = pb_grpc.LogIngestStub(channel).Publish(
            metadata=(("authorization", f"Bearer {token}"),)
        )
        self.in_flight: deque[Batch] = deque()
        # The gateway answered at least once: the token and the stream were accepted.
        self.accepted = False
        # A write failed: the call's status may be the client's own INTERNAL rather than
        # the gateway's (grpc/grpc#36066, a write racing the gateway's end of the call).
        self.write_failed = False

    async def send(self, batch: Batch) -> None:
        self.in_flight.append(batch)
        try:
            await self.call.write(batch.request)
        except grpc.aio.AioRpcError:
            self.write_failed = True
            raise

    async def finish(self) -> None:
        """No more batches: the gateway ends the stream after its last ack."""
        await self.call.done_writing()

    async def answers(self) -> AsyncIterator[Answer]:
        async for ack in self.call:
            yield self.match(ack)

    def match(self, ack: pb.PublishAck) -> Answer:
        if not self.in_flight:
            raise ProtocolError(f"ack for batch {ack.sequence} with no batch in flight")
        batch = self.in_flight[0]
        if ack.sequence != batch.sequence:
            raise ProtocolError(f"ack for batch {ack.sequence}; batch {batch.sequence} was next")
        try:
            pairs = list(zip(batch.entries, ack.results, strict=True))
        except ValueError:
            raise ProtocolError(
                f"ack for batch {batch.sequence} has {len(ack.results)} results "
                f"for {len(batch.entries)} entries"
            ) from None
        self.in_flight.popleft()
        self.accepted = True
        return Answer(batch, pairs, ack.duplicate)

    def cancel(self) -> None:
        self.call.cancel()


def open_channel(
    target: str, credentials: grpc.ChannelCredentials | None, tuning: Options
) -> grpc.aio.Channel:
    """A channel that retries connecting quickly (gRPC's own default starts at 1 s) and
    pings to notice a dead connection (an unanswered ping fails the stream: reconnect)."""
    options = [
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", int(tuning.max_backoff * 1000)),
        ("grpc.keepalive_time_ms", int(tuning.keepalive * 1000)),
        ("grpc.keepalive_timeout_ms", int(min(tuning.keepalive, 10) * 1000)),
        ("grpc.http2.ping_timeout_ms", int(min(tuning.keepalive, 10) * 1000)),
        ("grpc.http2.max_pings_without_data", 0),  # idle is when a ping is needed most
    ]
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, credentials, options=options)
