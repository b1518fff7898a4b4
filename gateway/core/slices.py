"""Long work done in slices: the event loop gets a turn every few milliseconds of it."""

from __future__ import annotations

import asyncio

SLICE_SECONDS = 0.002  # of work between two of the loop's turns to serve others


class Slices:
    """`await slices.pause()` between the bounded steps of one long piece of work (a
    request of thousands of records): once SLICE_SECONDS have passed since the loop's
    last turn, it gets one."""

    __slots__ = ("_loop", "_until")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._until = self._loop.time() + SLICE_SECONDS

    async def pause(self) -> None:
        if self._loop.time() > self._until:
            await asyncio.sleep(0)
            self._until = self._loop.time() + SLICE_SECONDS
