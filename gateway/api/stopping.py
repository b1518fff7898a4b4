"""The drain signal: the app sets it when the gateway stops; the transports' open streams end
at their next batch boundary, and the drain waits for the publish streams' last acks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class Stopping:
    """Set when the gateway drains; open streams end at their next batch boundary."""

    def __init__(self) -> None:
        self.is_set = False
        self._future: asyncio.Future[None] | None = None
        self._streams = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def future(self) -> asyncio.Future[None]:
        """One shared future that completes on drain (waiting on it costs no task)."""
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
            if self.is_set:
                self._future.set_result(None)
        return self._future

    def set(self) -> None:
        self.is_set = True
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    @property
    def open(self) -> int:
        """Publish streams open now."""
        return self._streams

    @contextlib.contextmanager
    def stream(self) -> Iterator[None]:
        """Count an open publish stream, so a drain can wait for its last ack."""
        self._streams += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._streams -= 1
            if not self._streams:
                self._idle.set()

    async def streams_ended(self, timeout: float) -> bool:
        """Wait until every publish stream has answered its last batch and ended."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return self._idle.is_set()
