"""The publisher's bounded buffer: entries waiting to be sent, counted until acknowledged.

Filled from any thread (a logging handler runs in its caller's thread), drained by the
publisher's event loop. One lock guards the counters; the deque itself is thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from logs_gateway.v1 import logs_pb2 as pb


class Buffer:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._waiting: deque[tuple[pb.LogEntry, int, float]] = deque()
        self._space = threading.Condition()
        self.held = 0  # waiting + sent but not yet acknowledged
        self.waiting_bytes = 0
        self.accepted = 0  # ever offered and taken in
        self.settled = 0  # ever acknowledged or given up on
        self.dropped = 0  # refused because the buffer was full

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def first_at(self) -> float:
        """time.monotonic() when the oldest waiting entry arrived (0 when none waits)."""
        return self._waiting[0][2] if self._waiting else 0.0

    def offer(self, entry: pb.LogEntry, size: int) -> bool:
        """Take `entry` in, or return False when the buffer is full."""
        with self._space:
            if self.held >= self.capacity:
                return False
            self.held += 1
            self.accepted += 1
            self.waiting_bytes += size
            self._waiting.append((entry, size, time.monotonic()))
        return True

    def count_drop(self) -> None:
        with self._space:
            self.dropped += 1

    def take(self, max_entries: int, max_bytes: int) -> list[pb.LogEntry]:
        """The oldest waiting entries, at most `max_entries` and `max_bytes` (but at least
        one). They stay counted in `held` until settle()."""
        batch: list[pb.LogEntry] = []
        total = 0
        with self._space:
            while self._waiting and len(batch) < max_entries:
                entry, size, _ = self._waiting[0]
                if batch and total + size > max_bytes:
                    break
                self._waiting.popleft()
                batch.append(entry)
                total += size
            self.waiting_bytes -= total
        return batch

    def settle(self, count: int) -> None:
        """`count` taken entries are done (stored or failed): their room is free again."""
        with self._space:
            self.held -= count
            self.settled += count
            self._space.notify_all()

    def wait_for_space(self, timeout: float) -> None:
        """Block this (non-loop) thread until there is room or `timeout` passes."""
        with self._space:
            self._space.wait_for(lambda: self.held < self.capacity, timeout)
