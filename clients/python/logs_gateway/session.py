"""One Publish stream's run: resend what is unacknowledged, then stream new batches as the
batch policy lets them go, hand each ack on, and end when the token is due for refresh,
when the publisher is closing with nothing left, or when acks stop coming."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from logs_gateway.batcher import Batcher
from logs_gateway.connection import Answer, Connection
from logs_gateway.lifecycle import Lifecycle
from logs_gateway.options import Options
from logs_gateway.wake import Wake


class Stalled(Exception):
    """Acks stopped coming on a connection that looks open."""


class EndedEarly(Exception):
    """The gateway ended the stream (status OK) while we were still sending."""


class Session:
    def __init__(
        self,
        connection: Connection,
        batcher: Batcher,
        lifecycle: Lifecycle,
        wake: Wake,
        on_answer: Callable[[Answer], None],
        refresh_at: float,
    ) -> None:
        self.connection = connection
        self._batcher = batcher
        self._options: Options = batcher.options
        self._lifecycle = lifecycle
        self._wake = wake
        self._on_answer = on_answer
        self._refresh_at = refresh_at
        self._progress_at = time.monotonic()  # the last ack, or the start of the stream

    async def run(self) -> None:
        """Until the stream ends; raises what ended it, or Stalled / EndedEarly."""
        writer = asyncio.create_task(self._write())
        reader = asyncio.create_task(self._read())
        try:
            await self._watch(writer, reader)
        finally:
            self.connection.cancel()
            for task in (writer, reader):
                task.cancel()
            await asyncio.gather(writer, reader, return_exceptions=True)

    async def _watch(self, writer: asyncio.Task[None], reader: asyncio.Task[None]) -> None:
        """Until both tasks end; raises the first failure, or Stalled when acks stop."""
        ack_timeout = self._options.ack_timeout
        pending = {writer, reader}
        while pending:
            done, pending = await asyncio.wait(
                pending, timeout=ack_timeout / 4, return_when="FIRST_EXCEPTION"
            )
            if writer in done and writer.exception() is not None and reader in pending:
                # A write fails once the call has ended; the reader's error has its status.
                await asyncio.wait({reader}, timeout=1.0)
            for task in (reader, writer):
                if task.done() and (error := task.exception()) is not None:
                    raise error
            if reader.done() and not writer.done():
                raise EndedEarly("the gateway ended the stream before we did")
            late = time.monotonic() - self._progress_at > ack_timeout
            if self.connection.in_flight and late:
                raise Stalled(f"no ack for {ack_timeout} s")

    async def _write(self) -> None:
        connection = self.connection
        for batch in list(self._batcher.unacked.values()):  # a resend keeps its sequence
            if not await self._room():
                break
            await connection.send(batch)
        while await self._next_batch():
            if not connection.in_flight:
                self._progress_at = time.monotonic()
            await connection.send(self._batcher.take())
        await connection.finish()

    async def _room(self) -> bool:
        """Wait until another batch may be in flight; False when the stream should end."""
        while len(self.connection.in_flight) >= self._batcher.in_flight_limit:
            if time.monotonic() >= self._refresh_at:
                return False
            await self._wake.sleep(self._refresh_at - time.monotonic())
        return True

    async def _next_batch(self) -> bool:
        """True when the next batch should go (full, old enough or wanted now); False to
        end the stream (token refresh due, or closing with nothing left to send)."""
        batcher = self._batcher
        while True:
            now = time.monotonic()
            draining = self._lifecycle.draining
            if now >= self._refresh_at or (draining and not batcher.buffer.waiting):
                return False
            urgent = draining or batcher.flushing
            wait = batcher.wait(now, len(self.connection.in_flight), urgent)
            if wait <= 0:
                return True
            await self._wake.sleep(min(wait, self._refresh_at - now))

    async def _read(self) -> None:
        async for answer in self.connection.answers():
            self._progress_at = time.monotonic()
            self._on_answer(answer)
