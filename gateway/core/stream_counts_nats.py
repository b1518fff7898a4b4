"""Per-token counts of open streams in a JetStream KV bucket, for the NATS broker: the
SharedCounts (gateway.core.admission) that gateway.core.stream_counts keeps in Redis, seen
by every worker and gateway, with no second service.

Each token has a key per kind of stream (`open.KIND.OWNER`, the owner base64url-encoded
since a key allows few characters); its value lists the open streams as `INSTANCE:STREAM`.
An admission reads the key, drops the streams of instances that are gone, and writes it
back only if nobody wrote it meanwhile (JetStream's expected last subject sequence, a
compare-and-set; after a conflict it reads again): two gateways admitting for one token at
once never pass its limit together.

Leases need no clock but the server's. Each instance holds `live.INSTANCE`, which the server
deletes LEASE seconds after its last write (a per-message TTL, nats-server 2.11+), and
rewrites it every LEASE / 3; a crashed instance's key runs out, and the next admission for a
token drops that instance's streams, so they stop counting within LEASE seconds (plus up to
LEASE / 3 while another instance still remembers it alive). A token's key carries the same
TTL and every holder rewrites it on renewal, so a token whose holders all died leaves
nothing behind. The bucket lives in memory, replicated like the history: counts describe
live connections, and after every NATS node restarted each instance writes its streams back
at its next renewal. While NATS cannot be reached, each process counts its own streams
(gateway.core.admission), as with Redis.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Callable

import nats
import orjson
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import Header, StorageType
from nats.js.errors import APIError, NotFoundError

from gateway.core.stream_counts import Held

log = logging.getLogger("logs_gateway.stream_counts")
LEASE = 30.0  # seconds a stream counts without a renewal (whole seconds: the TTL's unit)
MAX_BYTES = 64 * 1024 * 1024  # the bucket's bound; past it admissions count locally
CONFLICTS = 50  # compare-and-set attempts on one key before giving up (count locally)
RENEWING = 32  # keys renewed at once
WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for a failed compare-and-set

Edit = Callable[[list[str]], list[str] | None]  # a key's new members, or None: refused


class Contended(NatsError):
    """A key kept changing under every attempt to write it."""


class NatsStreamCounts:
    """SharedCounts over a JetStream KV bucket (gateway.core.admission)."""

    def __init__(
        self,
        servers: str,
        *,
        bucket: str = "logs-gateway-streams",
        replicas: int = 1,
        timeout: float = 2.0,
        lease: float = LEASE,
    ) -> None:
        self._servers = [s.strip() for s in servers.split(",") if s.strip()]
        bucket = re.sub(r"[^A-Za-z0-9_-]", "_", bucket)  # what a bucket's name may hold
        self._bucket, self._replicas, self._timeout = bucket, replicas, timeout
        self._stream, self._prefix = f"KV_{bucket}", f"$KV.{bucket}."
        self._instance = secrets.token_hex(6)
        self._lease = max(1, round(lease))
        self._held = Held()  # key -> this instance's members
        self._seen_alive: dict[str, float] = {}  # other instance -> when its key was seen
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._connecting: asyncio.Task[JetStreamContext] | None = None
        self._renewer: asyncio.Task[None] | None = None

    async def take(self, kind: str, owner: str, stream: str, limit: int) -> bool | None:
        key, member = self._key(kind, owner), f"{self._instance}:{stream}"
        try:
            js = await self._jetstream()
            taken = await self._change(
                js, key, lambda ms: [*ms, member] if len(ms) < limit else None
            )
        except (NatsError, OSError, TimeoutError) as e:
            log.info(
                "stream counts unreachable; counting this process alone",
                extra={"key": key, "error": type(e).__name__},
            )
            return None
        if taken:
            self._held.add(key, member)
        return taken

    def give_back(self, kind: str, owner: str, stream: str) -> None:
        self._held.give_back(self._key(kind, owner), f"{self._instance}:{stream}", self._remove)

    async def close(self) -> None:
        """Send the last removals (bounded), stop renewing, close the connection."""
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, NatsError, OSError, TimeoutError):
                await self._connecting
        await self._held.sent(self._timeout)
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        if self._nc is not None:
            await self._nc.close()

    # -- the bucket ---------------------------------------------------------------------

    def _key(self, kind: str, owner: str) -> str:
        return f"open.{kind}.{base64.urlsafe_b64encode(owner.encode()).decode().rstrip('=')}"

    async def _jetstream(self) -> JetStreamContext:
        """The connection, made on first use and again after a failed attempt; callers
        meanwhile share the one attempt in flight, bounded by the timeout."""
        if self._js is not None:
            if self._nc is not None and not self._nc.is_connected:
                # Reconnecting: count alone at once rather than after the timeout, so a
                # publish still fails fast with UNAVAILABLE while NATS is away.
                raise ConnectionError("not connected to NATS")
            return self._js
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._connect())
        return await asyncio.shield(self._connecting)

    async def _connect(self) -> JetStreamContext:
        """Connect, create the bucket if missing, write this instance's live key, start
        its renewals."""
        nc = await asyncio.wait_for(
            nats.connect(
                self._servers,
                name="logs-gateway-stream-counts",
                connect_timeout=max(1, round(self._timeout)),
                reconnect_time_wait=0.25,  # seconds
                max_reconnect_attempts=-1,  # once connected; the first attempt is bounded
                error_cb=_log_error,
            ),
            self._timeout,
        )
        try:
            js = nc.jetstream(timeout=self._timeout)
            await js.create_key_value(
                bucket=self._bucket,
                history=1,
                storage=StorageType.MEMORY,
                replicas=self._replicas,
                max_bytes=MAX_BYTES,
            )
            await self._write_live(js)
        except BaseException:
            await nc.close()
            raise
        self._nc, self._js = nc, js
        self._renewer = asyncio.get_running_loop().create_task(self._renew_leases())
        return js

    async def _change(self, js: JetStreamContext, key: str, edit: Edit) -> bool:
        """Apply `edit` to the key's living members by compare-and-set; False when `edit`
        refused."""
        for _ in range(CONFLICTS):
            members, revision = await self._read(js, key)
            changed = edit(await self._living(js, members))
            if changed is None:
                return False
            if await self._write(js, key, changed, revision):
                return True
            await asyncio.sleep(secrets.randbelow(10) / 1000)  # apart from the other writer
        raise Contended(f"{key} changed under {CONFLICTS} attempts")

    async def _read(self, js: JetStreamContext, key: str) -> tuple[list[str], int]:
        """The key's members and revision; ([], 0) for a key that is not there."""
        try:
            message = await js.get_last_msg(self._stream, self._prefix + key)
        except NotFoundError:
            return [], 0
        members: list[str] = orjson.loads(message.data) if message.data else []
        return members, message.seq or 0

    async def _write(self, js: JetStreamContext, key: str, members: list[str], last: int) -> bool:
        """Write the key if its revision is still `last`; False if it changed meanwhile."""
        headers = {Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: str(last)}
        try:
            await js.publish(
                self._prefix + key, orjson.dumps(members), headers=headers, msg_ttl=self._lease
            )
        except APIError as e:
            if e.err_code == WRONG_LAST_SEQUENCE:
                return False
            raise
        return True

    async def _living(self, js: JetStreamContext, members: list[str]) -> list[str]:
        """`members` without those of instances whose live key ran out."""
        instances = {m.split(":", 1)[0] for m in members} - {self._instance}
        gone = {i for i in instances if not await self._alive(js, i)}
        return [m for m in members if m.split(":", 1)[0] not in gone]

    async def _alive(self, js: JetStreamContext, instance: str) -> bool:
        now = time.monotonic()
        if now - self._seen_alive.get(instance, -self._lease) < self._lease / 3:
            return True
        try:
            await js.get_last_msg(self._stream, f"{self._prefix}live.{instance}")
        except NotFoundError:
            self._seen_alive.pop(instance, None)
            return False
        self._seen_alive[instance] = now
        return True

    async def _write_live(self, js: JetStreamContext) -> None:
        await js.publish(f"{self._prefix}live.{self._instance}", b"", msg_ttl=self._lease)

    # -- background -----------------------------------------------------------------------

    async def _remove(self, key: str, member: str) -> None:
        try:
            js = await self._jetstream()
            await self._change(js, key, lambda members: [m for m in members if m != member])
        except (NatsError, OSError, TimeoutError):  # its lease runs out instead
            log.info("stream count not removed; its lease will expire", extra={"key": key})

    async def _renew_leases(self) -> None:
        """Every LEASE / 3: this instance's live key, then every key it holds streams in,
        written back with its streams (restored if another instance dropped them while
        this one could not renew)."""
        assert self._js is not None
        js, gate = self._js, asyncio.Semaphore(RENEWING)
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                await self._write_live(js)
            except (NatsError, OSError, TimeoutError):
                log.warning("stream leases not renewed; retrying", exc_info=True)
                continue
            await asyncio.gather(*(self._renew(js, gate, key) for key in list(self._held.by_key)))

    async def _renew(self, js: JetStreamContext, gate: asyncio.Semaphore, key: str) -> None:
        def ours_kept(members: list[str]) -> list[str]:  # as held when written, not before
            return [*members, *(self._held.by_key.get(key, set()) - set(members))]

        async with gate:
            try:
                await self._change(js, key, ours_kept)
            except (NatsError, OSError, TimeoutError):
                log.warning("stream lease not renewed; retrying", extra={"key": key})


async def _log_error(error: Exception) -> None:
    """nats-py's asynchronous errors (a lost server, a reconnect): logged, not raised."""
    log.info("stream counts connection", extra={"error": repr(error)})
