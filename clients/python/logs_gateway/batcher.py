"""Entries into numbered batches, and those batches until the gateway answers them.

Pure: no network and no clock of its own (the caller passes the time in), so the batch
policy, the sequence numbers and the splitting of a batch over the gateway's message limit
are tested without a server. The publisher's event loop is its only user; entries reach it
through the thread-safe Buffer.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from logs_gateway.buffer import Buffer
from logs_gateway.options import MAX_REQUEST_BYTES, Options
from logs_gateway.v1 import logs_pb2 as pb


@dataclass(frozen=True, slots=True, eq=False)  # compared by identity
class Batch:
    """One request: its (producer_id, sequence) is the key the gateway stores it under
    once, so a resend keeps it."""

    entries: list[pb.LogEntry]
    request: pb.PublishRequest

    @property
    def sequence(self) -> int:
        return self.request.sequence


class Batcher:
    def __init__(self, producer_id: str, options: Options, buffer: Buffer) -> None:
        self.producer_id = producer_id
        self.options = options
        self.buffer = buffer
        # Sent and not answered, oldest first: resent in this order on the next stream.
        self.unacked: OrderedDict[int, Batch] = OrderedDict()
        # Batches one of which the gateway refused as over its message limit; while any
        # is left they go one at a time, so the next refusal names its batch.
        self.suspects: set[int] = set()
        # Bytes of entries per batch: options.batch_bytes, halved at each batch found
        # over the gateway's message limit (that limit does not grow while we run).
        self.max_bytes = options.batch_bytes
        # Entries accepted up to this count go without lingering: a flush() waits for them.
        self.flush_to = 0
        self._sequence = 0

    @property
    def in_flight_limit(self) -> int:
        return 1 if self.suspects else self.options.max_in_flight

    @property
    def flushing(self) -> bool:
        """Entries a flush() waits for are still waiting."""
        return self.flush_to > self.buffer.accepted - self.buffer.waiting

    def wait(self, now: float, in_flight: int, urgent: bool) -> float:
        """Seconds until the next batch should go: 0 now, inf until something changes.
        A batch goes when full, when its oldest entry has lingered long enough, or at
        once when `urgent` (flush or close)."""
        buffer = self.buffer
        if not buffer.waiting or in_flight >= self.in_flight_limit:
            return math.inf
        if (
            urgent
            or buffer.waiting >= self.options.batch_size
            or buffer.waiting_bytes >= self.max_bytes
        ):
            return 0.0
        return buffer.first_at + self.options.linger - now

    def take(self) -> Batch:
        """The next batch from the buffer, numbered and counted as unacknowledged."""
        batch = self._number(self.buffer.take(self.options.batch_size, self.max_bytes))
        self.unacked[batch.sequence] = batch
        return batch

    def answered(self, sequence: int) -> Batch:
        """The batch the gateway answered (stored, or refused entry by entry)."""
        self.suspects.discard(sequence)
        return self.unacked.pop(sequence)

    def refused_as_too_large(self) -> None:
        """The gateway's message limit refused one of the unacknowledged batches, which
        one unknown (several were in flight): send them one at a time to find out."""
        self.suspects.update(self.unacked)

    def split(self, batch: Batch) -> list[Batch]:
        """Replace `batch`, refused alone as over the message limit, by its two halves
        (new sequences: the refused one was never stored), in its place in the resend
        order; batches made from now on hold at most half its bytes."""
        half = len(batch.entries) // 2
        halves = [self._number(batch.entries[:half]), self._number(batch.entries[half:])]
        self.max_bytes = max(1, min(self.max_bytes, batch.request.ByteSize() // 2))
        order = list(self.unacked.values())
        at = order.index(batch)
        order[at : at + 1] = halves
        self.unacked = OrderedDict((b.sequence, b) for b in order)
        self.suspects.discard(batch.sequence)
        self.suspects.update(b.sequence for b in halves)
        return halves

    def drop(self, batch: Batch) -> None:
        """Forget a batch that failed as a whole (its entries are reported elsewhere)."""
        self.suspects.discard(batch.sequence)
        del self.unacked[batch.sequence]

    def abandon(self) -> int:
        """Forget every waiting and unacknowledged entry; return how many there were."""
        count = sum(len(b.entries) for b in self.unacked.values())
        self.unacked.clear()
        self.suspects.clear()
        while self.buffer.waiting:
            count += len(self.buffer.take(100_000, MAX_REQUEST_BYTES * 1024))
        return count

    def _number(self, entries: list[pb.LogEntry]) -> Batch:
        self._sequence += 1
        request = pb.PublishRequest(
            producer_id=self.producer_id, sequence=self._sequence, entries=entries
        )
        return Batch(entries, request)
