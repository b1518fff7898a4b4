"""The NATS broker's channel discovery (Broker.channels) and what its channels lost before
their oldest retained message (Broker.lost), from JetStream's own per-subject state.

Discovery reads the newest message of every channel the patterns match, headers only,
through one consumer per pattern (a few hundred a request: the stream's seq orders them),
and then gets both ends of the `limit` chosen only (entries, newest seq, when stored): a
page costs what it returns plus that streamed scan. What a channel lost is counted in its
current life (the offset of its first retained entry, a get per channel, GETS_AT_ONCE at a
time, --nats-lost-channels at most: past that a lower bound, logged); a channel emptied entirely
before leaves nothing in the stream, so unless the stream never let a message go the count
is a lower bound ("expired", as DESIGN §3.2 "On NATS" says of every loss before the
stream's front).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import orjson
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from gateway.core.broker import Gap, Loss
from gateway.core.broker_nats_codec import Stored, decode
from gateway.core.broker_nats_publish import unavailable
from gateway.core.broker_nats_read import Reader, TooMany
from gateway.core.broker_nats_subjects import (
    last_event,
    message_of,
    pattern_subject,
    subject_channel,
)
from gateway.core.channels import Pattern, parse_pattern
from gateway.core.discovery import ChannelInfo, newest_first
from gateway.core.errors import Code, GatewayError

GETS_AT_ONCE = 64  # direct gets in flight for one call
T = TypeVar("T")
log = logging.getLogger("logs_gateway.nats")


class Channels:
    def __init__(
        self,
        nc: Client,
        reader: Reader,
        stream: str,
        timeout: float,
        lost_checked: int,
        listed: int,
    ) -> None:
        self._nc = nc
        self._lost_checked = lost_checked  # --nats-lost-channels
        self._listed = listed  # --nats-listed-channels
        self._reader = reader
        # Reads refused or cut short at a bound, by bound (Usage.bounds_reached).
        self.bounds_reached: Counter[str] = Counter()
        self._js = nc.jetstream(timeout=timeout)
        self._stream = stream
        self._timeout = timeout

    async def page(
        self, patterns: Sequence[Pattern], before: int | None, limit: int, max_age: float
    ) -> list[ChannelInfo]:
        """Broker.channels: the `limit` newest below `before`, newest first. The channels'
        newest messages come headers only through one consumer per pattern (a few hundred
        a request); only the `limit` chosen from them cost a get each of their two ends."""
        cutoff = time.time() - max_age
        top = message_of(before)[0] if before is not None else math.inf
        heads = [h for h in await self._heads(patterns) if h[1] <= top and h[2] >= cutoff]
        # One more than asked: the message `before` falls in may hold events past it.
        chosen = [name for name, _, _ in heapq.nlargest(limit + 1, heads, key=lambda h: h[1])]
        ends = await self._each(chosen, self._ends)
        held = [
            ChannelInfo(name, last.offset + last.count - first.offset, _newest(last), when)
            for name, (first, last, when) in zip(chosen, ends, strict=True)
            if first is not None and last is not None and when >= cutoff
        ]
        return newest_first(held, lambda c: c.newest, before, limit)

    async def _heads(self, patterns: Sequence[Pattern]) -> list[tuple[str, int, float]]:
        """(channel, stream seq, stored at) of the newest message of each channel that
        `patterns` match, each channel once. Each costs a delivered message (~190 µs of
        nats-py here), so past --nats-listed-channels matched the call is refused, known
        from the consumer's count before any is delivered, never answered from a part."""
        heads: dict[str, tuple[str, int, float]] = {}
        for pattern in {p.text: p for p in patterns}.values():
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT, headers_only=True
            )
            room = self._listed - len(heads)
            try:
                async for msg in self._reader.consume(pattern, config, most=room):
                    name = subject_channel(self._stream, msg.subject)
                    meta = msg.metadata
                    heads[name] = (name, meta.sequence.stream, meta.timestamp.timestamp())
            except TooMany as e:
                raise self._too_many(patterns, len(heads) + e.pending) from None
        return list(heads.values())

    def _too_many(self, patterns: Sequence[Pattern], heads: int) -> GatewayError:
        """The refusal of a listing that would read `heads` channels' newest messages (the
        patterns' counts added up: a channel two of them match counts twice)."""
        texts = ",".join(p.text for p in patterns)
        self.bounds_reached["listed_channels"] += 1
        log.warning(
            "channels(): too many channels to list; refused",
            extra={"patterns": texts, "heads": heads, "bound": self._listed},
        )
        return GatewayError(
            Code.INVALID_ARGUMENT,
            f"listing {texts} would read at least {heads} channels; this gateway reads at "
            f"most {self._listed} a listing (--nats-listed-channels): name a narrower pattern",
        )

    async def lost(self, patterns: Sequence[Pattern], exact: bool) -> list[Gap]:
        """Broker.lost: per pattern, what its channels lost in their current lives before
        their first retained entry; `exact` when the stream never let a message go. At
        most --nats-lost-channels channels are looked at (a get each): past that, the rest are
        left out and the count is a lower bound ("expired"), never a silent zero."""
        losses = [Loss(exact=exact) for _ in patterns]
        seen: set[str] = set()
        for i, pattern in enumerate(patterns):
            names = [n for n in await self._matching([pattern]) if n not in seen]
            room = self._lost_checked - len(seen)
            if len(names) > room:
                self.bounds_reached["lost_channels"] += 1
                log.warning(
                    "lost(): too many channels to count; reporting a lower bound",
                    extra={"pattern": pattern.text, "matched": len(names), "checked": room},
                )
                names, losses[i].exact = names[:room], False
            seen.update(names)
            for first in await self._each(names, self._first):
                if first is not None and first.offset:
                    losses[i].add(first.offset, last_event(first.prev, first.prev_count), exact)
        return Loss.gaps(patterns, losses, False, 0)

    async def _matching(self, patterns: Sequence[Pattern]) -> list[str]:
        """The channels holding messages that `patterns` match, each once."""
        names: dict[str, None] = {}
        for pattern in patterns:
            request = orjson.dumps({"subjects_filter": pattern_subject(self._stream, pattern)})
            try:
                reply = await self._nc.request(
                    f"$JS.API.STREAM.INFO.{self._stream}", request, self._timeout
                )
            except (NatsError, TimeoutError):
                raise unavailable() from None
            subjects = orjson.loads(reply.data).get("state", {}).get("subjects") or {}
            names.update((subject_channel(self._stream, s), None) for s in subjects)
        return list(names)

    async def _each(self, names: list[str], get: Callable[[str], Awaitable[T]]) -> list[T]:
        gate = asyncio.Semaphore(GETS_AT_ONCE)

        async def one(name: str) -> T:
            async with gate:
                return await get(name)

        return list(await asyncio.gather(*(one(n) for n in names)))

    async def _first(self, name: str) -> Stored | None:
        return await self._get(name, first=True)

    async def _ends(self, name: str) -> tuple[Stored | None, Stored | None, float]:
        first, last = await self._get(name, first=True), await self._get(name, first=False)
        return first, last, last.stored_at if last is not None else 0.0

    async def _get(self, name: str, first: bool) -> Stored | None:
        """A channel's first or last retained message (None: it holds none now)."""
        subject = pattern_subject(self._stream, parse_pattern(name))
        try:
            if first:
                msg = await self._js.get_msg(self._stream, seq=1, subject=subject, next=True)
            else:
                msg = await self._js.get_last_msg(self._stream, subject)
        except NotFoundError:
            return None
        except (NatsError, TimeoutError):
            raise unavailable() from None
        at = msg.time.timestamp() if msg.time is not None else 0.0
        return decode(name, msg.seq or 0, msg.headers, msg.data or b"", at)


def _newest(message: Stored) -> int:
    return last_event(message.seq, message.count)
