"""Reads of the NATS broker: head, replay and tail, at the stream's leader.

A read takes the stream's state first (its first and last seq) and reads nothing past that
last seq: what is stored later reaches a subscription live. Messages come through a
short-lived pull consumer per pattern (ordered, in memory, one replica, deleted after), in
pages of PAGE messages, so a read costs the messages that match, not the stream.

Losses after a cursor, per channel, from the first message read on it (DESIGN §3.2, "On
NATS"): its headers name the channel's previous message and the start of its life, so
what the channel lost between the cursor and it is counted exactly when the cursor lies
in or just before what the channel holds, or before its life began; past that (the
cursor's own entries of the channel are gone) the count is a lower bound ("expired").
A channel emptied by age or by the byte bound leaves nothing in the stream; only messages
before the stream's first one can be gone that way, so a cursor older than that gets an
"expired" gap (at least what is counted) instead of a silent loss.

`--history-entries` bounds the messages of a subject in the stream (each one a batch's
entries); reads keep only each channel's newest `max_entries` entries and count the
rest as trimmed, so the bound readers see is per entry, as on the other brokers.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from gateway.core.broker import Loss, Replay
from gateway.core.broker_nats_codec import Stored, decode
from gateway.core.broker_nats_publish import unavailable
from gateway.core.broker_nats_stream import epoch_of
from gateway.core.broker_nats_subjects import (
    SLOTS,
    event_seq,
    last_event,
    message_of,
    pattern_subject,
    subject_channel,
)
from gateway.core.channels import Pattern
from gateway.core.cursor import Cursor
from gateway.core.events import Event


@dataclass(frozen=True, slots=True)
class StreamState:
    first_seq: int  # its oldest message (last_seq + 1 when it holds none)
    last_seq: int
    channels: int  # subjects holding messages
    bytes: int
    epoch: str


PAGE = 256  # messages per fetch
CONSUMER_IDLE = 30.0  # seconds after which NATS deletes a read's consumer left behind


class Reader:
    def __init__(
        self, nc: Client, stream: str, timeout: float, max_entries: int, max_age: float
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=timeout)
        self._stream = stream
        self._timeout = timeout
        self._max_entries = max_entries
        self._max_age = max_age

    async def state(self) -> StreamState:
        """The stream's state, read at its leader (nats-py's StreamState leaves out the
        number of subjects: read here from the reply itself)."""
        try:
            reply = await self._nc.request(
                f"$JS.API.STREAM.INFO.{self._stream}", b"", self._timeout
            )
        except (NatsError, TimeoutError):
            raise unavailable() from None
        info = orjson.loads(reply.data)
        if "error" in info:
            raise unavailable()
        state = info["state"]
        return StreamState(
            state["first_seq"],
            state["last_seq"],
            state.get("num_subjects", 0),
            state["bytes"],
            epoch_of(info["created"]),
        )

    async def head(self) -> int:
        """The seq of the stream's newest event (0 when it never held one)."""
        last = (await self.state()).last_seq
        if not last:
            return 0
        try:
            msg = await self._js.get_msg(self._stream, last)
        except NotFoundError:  # aged out: no later event can have a lower seq
            return last_event(last, SLOTS)
        except (NatsError, TimeoutError):
            raise unavailable() from None
        return last_event(last, (msg.data or b"").count(b"\n") + 1)

    async def replay(self, patterns: Sequence[Pattern], after: Cursor, epoch: str) -> Replay:
        state = await self.state()
        reset = after.epoch != epoch
        since = 0 if reset else after.seq
        start = max(message_of(since)[0], 1)
        messages = await self._read(patterns, start, state.last_seq)
        losses = [Loss(exact=True) for _ in patterns]
        runs: list[list[Event]] = []
        for i, held in _by_channel(patterns, messages):
            events, (lost, newest, exact) = self._after(held, since)
            losses[i].add(lost, newest, exact)
            runs.append(events)
        # Channels emptied by age or bytes are gone from the stream without a trace: only
        # a cursor at or past the stream's front is sure nothing of them followed it.
        # (A cursor in the message just before the front is taken as sure: its own
        # channel's loss there is counted by the chain.)
        forgotten = event_seq(state.first_seq, 0) - 1 if state.first_seq > 1 else 0
        for loss in losses:
            loss.exact = loss.exact and message_of(since)[0] >= state.first_seq - 1
        replay = Replay(gaps=Loss.gaps(patterns, losses, reset, forgotten))
        replay.events = sorted(itertools.chain.from_iterable(runs), key=lambda e: e.seq)
        return replay

    async def tail(self, patterns: Sequence[Pattern], count: int, min_severity: int) -> list[Event]:
        """Reads back from the stream's end, four times as far each time, until `count`
        matching events are found or the stream's start is reached."""
        if count <= 0:
            return []
        state = await self.state()
        span = count
        while True:
            low = max(state.first_seq, state.last_seq - span + 1, 1)
            messages = await self._read(patterns, low, state.last_seq)
            found = [
                e
                for _, held in _by_channel(patterns, messages)
                for e in self._visible(held)
                if e.severity >= min_severity
            ]
            if len(found) >= count or low <= state.first_seq:
                found.sort(key=lambda e: e.seq)
                return found[-count:]
            span *= 4

    def _keep_from(self, held: list[Stored]) -> int:
        """The lowest offset of a channel within its bounds: the per-channel entry bound,
        and age (NATS expires on its own timer; a read does not wait for it)."""
        newest = held[-1]
        keep_from = newest.offset + newest.count - self._max_entries
        cutoff = time.time() - self._max_age
        for message in held:
            if message.stored_at >= cutoff:
                return max(keep_from, message.offset)
        return newest.offset + newest.count

    def _visible(self, held: list[Stored]) -> list[Event]:
        keep_from = self._keep_from(held)
        return [e for m in held for e in m.events() if e.offset >= keep_from]

    def _after(self, held: list[Stored], since: int) -> tuple[list[Event], tuple[int, int, bool]]:
        """A channel's events after `since`, and what it lost after `since`."""
        keep_from = self._keep_from(held)
        lost, newest, exact = _lost_before(held[0], since)
        events = []
        for message in held:
            for e in message.events():
                if e.seq <= since:
                    continue
                if e.offset < keep_from:
                    lost, newest = lost + 1, max(newest, e.seq)
                else:
                    events.append(e)
        return events, (lost, newest, exact)

    async def _read(self, patterns: Sequence[Pattern], start: int, upto: int) -> list[Stored]:
        """Messages in [start, upto] on the channels `patterns` match, in stream order."""
        found: dict[int, Stored] = {}
        if upto < start:
            return []
        for text in dict.fromkeys(p.text for p in patterns):
            pattern = next(p for p in patterns if p.text == text)
            for message in await self._read_one(pattern, start, upto):
                found[message.seq] = message
        return [found[seq] for seq in sorted(found)]

    async def _read_one(self, pattern: Pattern, start: int, upto: int) -> list[Stored]:
        subject = pattern_subject(self._stream, pattern)
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=AckPolicy.NONE,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=CONSUMER_IDLE,
        )
        try:
            sub = await self._js.pull_subscribe(subject, stream=self._stream, config=config)
        except (NatsError, TimeoutError):
            raise unavailable() from None
        out: list[Stored] = []
        name = ""
        try:
            info = await sub.consumer_info()
            name, pending = info.name, info.num_pending or 0
            while pending > 0:
                try:
                    msgs = await sub.fetch(min(PAGE, pending), self._timeout)
                except TimeoutError:
                    # Nothing came: what was pending expired meanwhile (then the consumer
                    # has nothing left), or NATS is slow (then this read fails, loudly).
                    if (await sub.consumer_info()).num_pending:
                        raise
                    return out
                pending -= len(msgs)
                for msg in msgs:
                    seq = msg.metadata.sequence.stream
                    if seq > upto:
                        return out
                    channel = subject_channel(self._stream, msg.subject)
                    at = msg.metadata.timestamp.timestamp()
                    out.append(decode(channel, seq, msg.headers, msg.data, at))
            return out
        except (NatsError, TimeoutError):
            raise unavailable() from None
        finally:
            await self._drop(sub, name)

    async def _drop(self, sub: JetStreamContext.PullSubscription, name: str) -> None:
        """Delete a read's consumer now (NATS would after CONSUMER_IDLE)."""
        with contextlib.suppress(NatsError, TimeoutError):
            await sub.unsubscribe()
            if name:
                await self._js.delete_consumer(self._stream, name)


def _lost_before(first: Stored, since: int) -> tuple[int, int, bool]:
    """What a channel lost between cursor `since` and `first`, the first message read on
    it (at or after the cursor's message): (count, newest lost seq, whether exact)."""
    start, index = message_of(since)
    prev, prev_count = first.prev, first.prev_count
    if first.seq == start or prev < start:  # the cursor is in it, or before its previous
        return 0, 0, True
    newest = last_event(prev, prev_count)
    if prev == start:  # the cursor's own message, gone: its entries after the cursor
        return max(prev_count - index - 1, 0), newest, True
    if first.life > start:  # every entry of this life before `first` followed the cursor
        return first.offset, newest, True
    if first.life == start:  # the life began in the cursor's message
        return first.offset - index - 1, newest, True
    return prev_count, newest, False  # at least the previous message's entries


def _by_channel(
    patterns: Sequence[Pattern], messages: list[Stored]
) -> list[tuple[int, list[Stored]]]:
    """Messages grouped by channel (in stream order), each channel under the index of
    the first pattern matching it."""
    groups: dict[str, list[Stored]] = {}
    for message in messages:
        groups.setdefault(message.channel, []).append(message)
    out = []
    for channel, held in groups.items():
        index = next(i for i, p in enumerate(patterns) if p.matches(channel))
        out.append((index, held))
    return out
