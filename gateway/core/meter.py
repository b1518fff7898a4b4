"""A rate meter over the last minute, in one-second buckets (for /admin/logs/stats)."""

from __future__ import annotations

import time

WINDOW = 60


class Meter:
    def __init__(self) -> None:
        self.total = 0
        self._buckets = [0] * WINDOW
        self._started = time.monotonic()
        self._second = int(self._started)

    def add(self, n: int, at: float) -> None:
        """Count `n` at `at` (time.monotonic(), read by the caller for its own use too)."""
        now = int(at)
        if now != self._second:
            self._advance(now)
        self._buckets[self._second % WINDOW] += n
        self.total += n

    def rate(self) -> float:
        """Events per second over the last minute, or over the time since start when that
        is shorter (a gateway up for 6 s that stored 600 entries says 100/s, not 10/s)."""
        self._advance(int(time.monotonic()))
        covered = min(WINDOW, max(1.0, time.monotonic() - self._started))
        return sum(self._buckets) / covered

    def _advance(self, now: int) -> None:
        """Move on to second `now`, emptying the buckets of the seconds passed."""
        for second in range(self._second + 1, min(now, self._second + WINDOW) + 1):
            self._buckets[second % WINDOW] = 0
        self._second = max(self._second, now)
