"""Live delivery on the NATS broker: only what this gateway's subscriptions watch.

The stream republishes every stored message under `{stream}-live.` (after it is stored,
with its stream seq and the previous seq of its subject). `watch(pattern)` subscribes to
the pattern's subjects there, so NATS routes a gateway only the channels its viewers
match, and nothing when it has none; the hub counts the subscriptions per pattern.

No silent hole: each message names its channel's previous message, and the gateway knows
the last one it delivered on that channel (or, for a channel it has not seen, the stream's
end when the watch began). A previous message newer than both was stored while watched and
never arrived (NATS dropped it for a slow consumer, or the connection was down): the live
feed calls the resync callbacks, the hub ends its streams, and clients resume exactly from
their cursors through history. A reconnect and NATS's slow-consumer signal do the same,
as soon as they happen.

Messages reach nats-py's subscriptions on one task each; a batch taken in one read is put
back in stream order before the listeners get it, so they see events in seq order.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from gateway.core.broker import Listener
from gateway.core.broker_nats_codec import decode
from gateway.core.broker_nats_subjects import (
    LAST_SEQUENCE,
    SEQUENCE,
    pattern_subject,
    subject_channel,
)
from gateway.core.channels import Pattern

log = logging.getLogger("logs_gateway.nats")

SEEN_MAX = 200_000  # channels whose last delivered message is remembered (then: conservative)
PENDING_BYTES = 64 * 1024 * 1024  # NATS-side bound of one watch's undelivered messages


@dataclass(slots=True)
class _Watch:
    subscription: Subscription | None = None
    since: int = 0  # the stream's last seq once the subscription was in place


class Live:
    def __init__(
        self,
        nc: Client,
        live_prefix: str,
        stream_end: Callable[[], Awaitable[int]],
        resync: Callable[[str], None],
    ) -> None:
        self._nc = nc
        self._live_prefix = live_prefix
        self._stream_end = stream_end
        self._resync = resync
        self._watches: dict[str, _Watch] = {}
        self._seen: OrderedDict[str, int] = OrderedDict()  # channel -> last seq delivered
        self._queued: list[tuple[int, int, Msg]] = []  # (seq, its watch's start, message)
        self._flushing: asyncio.Handle | None = None
        self.listeners: list[Listener] = []
        self.delivered = 0  # messages handed to the listeners
        self.gaps = 0  # holes found in the live feed (each one a resync)

    @property
    def watched(self) -> int:
        return len(self._watches)

    async def watch(self, pattern: Pattern) -> None:
        """Receive the channels `pattern` matches from now on: once this returns, every
        message stored after the stream's end (as read now) reaches the listeners."""
        if pattern.text in self._watches:
            return
        watch = self._watches[pattern.text] = _Watch()
        subject = pattern_subject(self._live_prefix, pattern)
        try:
            watch.subscription = await self._nc.subscribe(
                subject, cb=functools.partial(self._take, watch), pending_bytes_limit=PENDING_BYTES
            )
            await self._nc.flush()
            watch.since = await self._stream_end()
        except BaseException:
            self.unwatch(pattern)
            raise

    def unwatch(self, pattern: Pattern) -> None:
        watch = self._watches.pop(pattern.text, None)
        if watch is not None and watch.subscription is not None and self._nc.is_connected:
            asyncio.get_running_loop().create_task(_unsubscribe(watch.subscription))

    async def _take(self, watch: _Watch, msg: Msg) -> None:
        seq = int((msg.headers or {})[SEQUENCE])
        self._queued.append((seq, watch.since, msg))
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = None
        queued, self._queued = sorted(self._queued, key=lambda q: q[0]), []
        for seq, since, msg in queued:
            channel = subject_channel(self._live_prefix, msg.subject)
            seen = self._seen.get(channel)
            if seen is not None and seq <= seen:
                continue  # delivered already (two watches match its channel)
            prev = int((msg.headers or {}).get(LAST_SEQUENCE, 0))
            # Missed: its channel's previous message was stored while watched (after the
            # watch began) and is not the last one delivered here.
            if prev > max(since, seen or 0):
                self.gap(f"live message {prev} of {channel} never arrived")
            self._seen[channel] = seq
            self._seen.move_to_end(channel)
            if len(self._seen) > SEEN_MAX:
                self._seen.popitem(last=False)
            events = decode(channel, seq, msg.headers, msg.data).events()
            self.delivered += 1
            for listener in self.listeners:
                listener(events)

    def gap(self, why: str) -> None:
        """Live delivery has a hole: subscribers resume from history."""
        self.gaps += 1
        log.warning(
            "nats live feed has a gap; live streams resume from history", extra={"why": why}
        )
        self._resync(why)


async def _unsubscribe(subscription: Subscription) -> None:
    try:
        await subscription.unsubscribe()
    except Exception:  # the connection went meanwhile: the subscription went with it
        log.debug("unsubscribe failed", exc_info=True)
