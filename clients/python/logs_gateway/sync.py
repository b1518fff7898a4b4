"""SyncPublisher: the Publisher for code without an event loop (scripts, threads, logging).

It runs a Publisher on its own event loop in a daemon thread. publish() returns as soon as
the entry is buffered; only a full buffer with when_full="block" makes it wait.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar, Unpack

from logs_gateway.entries import make_entry
from logs_gateway.errors import PublisherClosed
from logs_gateway.options import DEFAULT_TARGET, EntryFields, Settings, Stats
from logs_gateway.publisher import Publisher
from logs_gateway.tokens import TokenSource
from logs_gateway.v1 import logs_pb2 as pb

T = TypeVar("T")


class SyncPublisher:
    """Blocking twin of Publisher, with the same arguments. Use
    `with SyncPublisher(token) as p`.

    `on_error` is called on the publisher's thread.
    """

    def __init__(
        self, token: TokenSource, target: str = DEFAULT_TARGET, **settings: Unpack[Settings]
    ) -> None:
        self._publisher = Publisher(token, target, **settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="logs-gateway-publisher", daemon=True
        )
        self._thread.start()
        self._call(self._publisher.start())

    def __enter__(self) -> SyncPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def producer_id(self) -> str:
        return self._publisher.producer_id

    @property
    def stats(self) -> Stats:
        return self._publisher.stats

    def publish(self, channel: str, message: str, **fields: Unpack[EntryFields]) -> bool:
        """Buffer one entry; False if dropped (full buffer with when_full="drop")."""
        return self.publish_entry(make_entry(channel, message, **fields))

    def publish_entry(self, entry: pb.LogEntry) -> bool:
        return self._publisher.publish_entry_from_thread(entry)

    def publish_nowait(self, channel: str, message: str, **fields: Unpack[EntryFields]) -> bool:
        """Buffer one entry, never waiting; False if the buffer was full (counted)."""
        return self._publisher.publish_nowait(channel, message, **fields)

    def publish_entry_nowait(self, entry: pb.LogEntry) -> bool:
        return self._publisher.publish_entry_nowait(entry)

    def flush(self, timeout: float | None = None) -> None:
        """Wait for the acks of everything buffered so far; raise the first new error."""
        if self._loop.is_closed():
            raise PublisherClosed("the publisher is closed")
        self._call(self._publisher.flush(timeout))

    def close(self, timeout: float | None = None) -> None:
        """Flush, close the connection and stop the thread; raise the first new error."""
        if self._loop.is_closed():
            return
        try:
            self._call(self._publisher.close(timeout))
        finally:
            self._call(_cancel_leftovers())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()


async def _cancel_leftovers() -> None:
    """Cancel and await what gRPC left running, as asyncio.run() does, so no task is
    destroyed while pending when the loop closes."""
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def publish_lines(
    publisher: SyncPublisher, channel: str, lines: Iterable[str], **fields: Unpack[EntryFields]
) -> int:
    """Publish each non-blank line as one entry (line ending removed); return the count."""
    count = 0
    for line in lines:
        text = line.rstrip("\r\n")
        if text.strip():
            publisher.publish(channel, text, **fields)
            count += 1
    return count
