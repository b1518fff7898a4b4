"""Per-token counts of open streams in Redis, seen by every worker and instance.

Each token has a sorted set per kind of stream (`P:open:KIND:OWNER`): its members are the
open streams (`INSTANCE:STREAM`), each scored with the Redis time its lease runs out. The
instance renews its streams' leases every LEASE / 3; a lease not renewed (its process
crashed or lost Redis) runs out, and the next admission of that token drops it, so a dead
worker's streams stop counting within LEASE seconds. The set itself expires with its last
lease. Redis's clock scores every lease, so the instances' clocks need not agree. While
Redis cannot be reached, each process counts its own streams (gateway.core.admission): a
live stream can start through an outage, and the streams opened meanwhile count only in
their own process until they close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict
from collections.abc import Callable, Coroutine
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

log = logging.getLogger("logs_gateway.stream_counts")
LEASE = 30.0  # seconds a stream counts without a renewal
POOL_SIZE = 4

# KEYS: the token's set. ARGV: lease ms, limit, member.
_TAKE = """
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[1]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

# KEYS: sets. ARGV: lease ms, then per set its members joined by spaces. XX: a member removed
# meanwhile (its stream closed) stays removed.
_RENEW = """
local now = redis.call('TIME')
local until_ms = now[1] * 1000 + math.floor(now[2] / 1000) + tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  for member in string.gmatch(ARGV[i + 1], '%S+') do
    redis.call('ZADD', key, 'XX', until_ms, member)
  end
  redis.call('PEXPIRE', key, ARGV[1])
end
return 0
"""

RENEW_KEYS = 500  # sets renewed per script call, so one call stays short


class Held:
    """An instance's counted streams by key, and the removals it is still sending: what
    both shared counts (Redis, gateway.core.stream_counts_nats) keep of their own."""

    def __init__(self) -> None:
        self.by_key: defaultdict[str, set[str]] = defaultdict(set)
        self._sending: set[asyncio.Task[None]] = set()

    def add(self, key: str, member: str) -> None:
        self.by_key[key].add(member)

    def give_back(
        self, key: str, member: str, send: Callable[[str, str], Coroutine[Any, Any, None]]
    ) -> None:
        """Forget `member` and send its removal in the background (if it was held)."""
        members = self.by_key.get(key)
        if members is None or member not in members:
            return
        members.discard(member)
        if not members:
            del self.by_key[key]
        task = asyncio.get_running_loop().create_task(send(key, member))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def sent(self, timeout: float) -> None:
        """Wait (at most `timeout`) for the removals still being sent."""
        if self._sending:
            await asyncio.wait(self._sending, timeout=timeout)


class RedisStreamCounts:
    """SharedCounts over Redis (gateway.core.admission)."""

    def __init__(
        self, url: str, *, prefix: str = "logs-gateway", timeout: float = 2.0, lease: float = LEASE
    ) -> None:
        # A few connections, waited for when busy: a flood of new streams must not open as
        # many connections to Redis (one script call takes microseconds).
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self._redis = Redis(connection_pool=pool)
        self._take = self._redis.register_script(_TAKE)
        self._renew = self._redis.register_script(_RENEW)
        self._prefix = f"{prefix}:open"
        self._instance = secrets.token_hex(6)
        self._lease_ms = int(lease * 1000)
        self._lease = lease
        self._held = Held()  # set key -> members
        self._renewer: asyncio.Task[None] | None = None

    async def take(self, kind: str, owner: str, stream: str, limit: int) -> bool | None:
        key, member = self._key(kind, owner), f"{self._instance}:{stream}"
        try:
            taken = await self._take([key], [self._lease_ms, limit, member])
        except RedisError:
            log.info("stream counts unreachable; counting this process alone", extra={"key": key})
            return None
        if not taken:
            return False
        self._held.add(key, member)
        if self._renewer is None:
            self._renewer = asyncio.get_running_loop().create_task(self._renew_leases())
        return True

    def give_back(self, kind: str, owner: str, stream: str) -> None:
        self._held.give_back(self._key(kind, owner), f"{self._instance}:{stream}", self._remove)

    @property
    def held(self) -> int:
        """Streams this instance counts in Redis."""
        return sum(len(m) for m in self._held.by_key.values())

    async def close(self) -> None:
        """Send the last removals (bounded), stop renewing, close the connections."""
        await self._held.sent(timeout=2.0)
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        await self._redis.aclose(close_connection_pool=True)

    def _key(self, kind: str, owner: str) -> str:
        return f"{self._prefix}:{kind}:{owner}"

    async def _remove(self, key: str, member: str) -> None:
        try:
            await self._redis.zrem(key, member)
        except RedisError:  # its lease runs out instead
            log.info("stream count not removed; its lease will expire", extra={"key": key})

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            held = [(key, " ".join(members)) for key, members in self._held.by_key.items()]
            for start in range(0, len(held), RENEW_KEYS):
                part = held[start : start + RENEW_KEYS]
                try:
                    await self._renew([k for k, _ in part], [self._lease_ms, *(m for _, m in part)])
                except RedisError:
                    log.warning("stream leases not renewed; retrying", exc_info=True)
