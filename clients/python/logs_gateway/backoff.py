"""Reconnect delays: exponential, capped, with jitter so many clients do not reconnect in
step after a gateway restart."""

from __future__ import annotations

import random

FIRST_DELAY = 0.05


class Backoff:
    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.attempt = 0
        self._random = random.Random()  # noqa: S311 - jitter, not security

    def next(self) -> float:
        """The delay before the next attempt: half fixed, half random, doubling each time."""
        delay = min(self.cap, FIRST_DELAY * 2.0 ** min(self.attempt, 30))
        self.attempt += 1
        return delay / 2 + self._random.uniform(0, delay / 2)

    def reset(self) -> None:
        self.attempt = 0
