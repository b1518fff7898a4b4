"""Publish rate per service: a token bucket per token subject (DESIGN §5, RESOURCE_EXHAUSTED).

A batch is admitted while its bucket holds at least one entry's credit, and is then charged
in full, so the bucket may go into debt: a batch of any size passes, and the average rate
still holds, because the next batch waits until the debt is paid off. The key is the token
subject, so a service that refreshes its token keeps its bucket. Each gateway process keeps
its own buckets.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MAX_IDLE_KEYS = 10_000


class RateLimiter:
    """`rate` entries per second per key, in bursts of up to one second's worth."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be greater than 0")
        self.rate = rate
        self._capacity = max(rate, 1.0)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (credit, when)
        self._prune_at = MAX_IDLE_KEYS

    def charge(self, key: str, entries: int) -> float:
        """Charge `entries` to `key`: 0.0 when admitted, else seconds to wait before retrying
        (nothing is charged then)."""
        now = self._clock()
        credit = self._credit(key, now)
        if credit < 1.0:
            self._buckets[key] = (credit, now)
            return (1.0 - credit) / self.rate
        self._buckets[key] = (credit - entries, now)
        if len(self._buckets) >= self._prune_at:
            self._prune(now)
        return 0.0

    def _credit(self, key: str, now: float) -> float:
        credit, when = self._buckets.get(key, (self._capacity, now))
        return min(self._capacity, credit + (now - when) * self.rate)

    def _prune(self, now: float) -> None:
        """Forget full buckets (a new bucket starts full), so keys cannot pile up."""
        self._buckets = {
            k: v for k, v in self._buckets.items() if self._credit(k, now) < self._capacity
        }
        self._prune_at = max(MAX_IDLE_KEYS, 2 * len(self._buckets))
