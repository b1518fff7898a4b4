"""The writer's wake-up: entries, acks, flush and close each wake it, from any thread."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading


class Wake:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self._scheduled = False  # a wake-up from another thread is on its way

    def bind(self) -> None:
        """From now on, set() from a thread other than the running loop's goes through it."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()

    def set(self) -> None:
        """Wake the writer, from any thread; from other threads at most one wake-up is
        scheduled at a time (a burst of log records must not flood the loop)."""
        if self._loop is None or threading.get_ident() == self._thread:
            self._event.set()
        elif not self._scheduled:
            self._scheduled = True
            with contextlib.suppress(RuntimeError):  # the loop is closed: close() ran
                self._loop.call_soon_threadsafe(self._from_thread)

    def _from_thread(self) -> None:
        self._scheduled = False
        self._event.set()

    async def sleep(self, timeout: float) -> None:
        """Until woken, or `timeout` seconds (inf: until woken)."""
        self._event.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), None if timeout == math.inf else timeout)
