"""A test SSE reader on a third-party parser (httpx-sse), so we test the wire, not ourselves."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse


@dataclass
class Event:
    event: str
    id: str
    data: Any


class Stream:
    """An open SSE connection; `next()` returns the next event (pings skipped)."""

    def __init__(self, events: AsyncIterator[ServerSentEvent], response: httpx.Response) -> None:
        self._events = events
        self.response = response
        self.last_id = ""

    async def next(self, timeout: float = 5.0, pings: bool = False) -> Event:
        """The next event a browser would dispatch: one with no data (a heartbeat that
        carries an id) only moves `last_id`, as EventSource does (httpx-sse yields it; a
        test that waited longer than a heartbeat took it for the event it expected), unless
        `pings` asks for those too (data None)."""
        while True:
            sse = await asyncio.wait_for(anext(self._events), timeout)
            if sse.id:
                self.last_id = sse.id
            if sse.data or pings:
                return Event(sse.event, sse.id, json.loads(sse.data) if sse.data else None)

    async def take(self, n: int, kind: str = "log", timeout: float = 5.0) -> list[Event]:
        """The next `n` events of `kind`, skipping others."""
        out: list[Event] = []
        while len(out) < n:
            event = await self.next(timeout)
            if event.event == kind:
                out.append(event)
        return out


@contextlib.asynccontextmanager
async def open_stream(
    base: str,
    channels: str,
    token: str | None,
    *,
    last_event_id: str | None = None,
    params: dict[str, str] | None = None,
    path: str = "/api/logs/stream",
    client: httpx.AsyncClient | None = None,
) -> AsyncIterator[Stream]:
    """A stream on a client of its own, or on `client` (a client costs milliseconds to make:
    its TLS context, even for plain HTTP)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    query = {"channels": channels, **(params or {})}
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(stream_client())
        source = await stack.enter_async_context(
            aconnect_sse(client, "GET", base + path, params=query, headers=headers)
        )
        yield Stream(source.aiter_sse(), source.response)


def stream_client() -> httpx.AsyncClient:
    """A client for streams: no read timeout (a stream may be quiet for long)."""
    return httpx.AsyncClient(timeout=httpx.Timeout(10, read=None))
