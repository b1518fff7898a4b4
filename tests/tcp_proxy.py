"""A TCP proxy for tests: forwards a local port to a target, and can cut every connection
(`drop`), swallow the target's replies (`hold`) to fake a network that loses acks, or go
silent both ways (`silent`), as a path that died without a reset does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class TcpProxy:
    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self._target = (host, int(port))
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()
        self.hold = False  # when set, bytes from the target are discarded
        self.silent = False  # when set, bytes both ways are discarded: a dead path
        self.connections = 0

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    def drop(self) -> None:
        """Cut every open connection, as a failing network would."""
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def close(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            target_r, target_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.transport.abort()
            return
        self._transports |= {client_w.transport, target_w.transport}
        await asyncio.gather(
            self._pipe(client_r, target_w, replies=False),
            self._pipe(target_r, client_w, replies=True),
            return_exceptions=True,
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, replies: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if not (replies and self.hold) and not self.silent:
                    writer.write(data)
                    await writer.drain()
        finally:
            writer.transport.abort()


@contextlib.asynccontextmanager
async def tcp_proxy(target: str) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(target)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
