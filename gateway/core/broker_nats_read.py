"""Reads of the NATS broker at the stream's leader: its state, its head, and the messages
of a range on the channels some patterns match, in stream order (broker_nats_pages makes
pages of them). Messages come through a short-lived pull consumer per pattern (in memory,
one replica, deleted after), PAGE messages a fetch, so a read costs what matches; discovery
(broker_nats_channels) reads the channels' newest messages through the same kind of
consumer.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from gateway.core.broker_nats_codec import Stored, decode
from gateway.core.broker_nats_publish import unavailable
from gateway.core.broker_nats_stream import epoch_of
from gateway.core.broker_nats_subjects import (
    SLOTS,
    last_event,
    pattern_subject,
    subject_channel,
)
from gateway.core.channels import Pattern


@dataclass(frozen=True, slots=True)
class StreamState:
    first_seq: int  # its oldest message (last_seq + 1 when it holds none)
    last_seq: int
    channels: int  # subjects holding messages
    bytes: int
    epoch: str


PAGE = 256  # messages per fetch
CONSUMER_IDLE = 30.0  # seconds after which NATS deletes a read's consumer left behind


class TooMany(Exception):
    """A consumer had more messages pending than its reader would take."""

    def __init__(self, pending: int) -> None:
        super().__init__(pending)
        self.pending = pending


class Reader:
    def __init__(self, nc: Client, stream: str, timeout: float) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=timeout)
        self._stream = stream
        self._timeout = timeout

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

    async def merged(
        self, patterns: Sequence[Pattern], start: int, upto: int
    ) -> AsyncIterator[Stored]:
        """Messages in [start, upto] on the channels `patterns` match, in stream order,
        each once (one consumer per distinct pattern, read a page at a time)."""
        unique = list({p.text: p for p in patterns}.values())
        readers = [self._messages(p, start, upto) for p in unique]
        heads: list[tuple[int, int, Stored]] = []
        try:
            for i, reader in enumerate(readers):
                first = await anext(reader, None)
                if first is not None:
                    heapq.heappush(heads, (first.seq, i, first))
            last = 0
            while heads:
                seq, i, message = heapq.heappop(heads)
                if seq != last:
                    last = seq
                    yield message
                following = await anext(readers[i], None)
                if following is not None:
                    heapq.heappush(heads, (following.seq, i, following))
        finally:
            for reader in readers:
                await reader.aclose()

    async def _messages(
        self, pattern: Pattern, start: int, upto: int
    ) -> AsyncGenerator[Stored, None]:
        if upto < start:
            return
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start)
        async for msg in self.consume(pattern, config):
            seq = msg.metadata.sequence.stream
            if seq > upto:
                return
            channel = subject_channel(self._stream, msg.subject)
            at = msg.metadata.timestamp.timestamp()
            yield decode(channel, seq, msg.headers, msg.data, at)

    async def consume(
        self, pattern: Pattern, config: ConsumerConfig, most: int | None = None
    ) -> AsyncGenerator[Msg, None]:
        """What a short-lived consumer of `config` (its delivery and headers; in memory, one
        replica, no acks, deleted after) delivers on the channels `pattern` matches, PAGE
        messages a fetch, until it has nothing pending; raises TooMany, before any fetch,
        when more than `most` are pending."""
        subject = pattern_subject(self._stream, pattern)
        config.ack_policy, config.mem_storage, config.num_replicas = AckPolicy.NONE, True, 1
        config.inactive_threshold = CONSUMER_IDLE
        try:
            sub = await self._js.pull_subscribe(subject, stream=self._stream, config=config)
        except (NatsError, TimeoutError):
            raise unavailable() from None
        name = ""
        try:
            info = await sub.consumer_info()
            name, pending = info.name, info.num_pending or 0
            if most is not None and pending > most:
                raise TooMany(pending)
            while pending > 0:
                try:
                    msgs = await sub.fetch(min(PAGE, pending), self._timeout)
                except TimeoutError:
                    # Nothing came: what was pending expired meanwhile (then the consumer
                    # has nothing left), or NATS is slow (then this read fails, loudly).
                    if (await sub.consumer_info()).num_pending:
                        raise
                    return
                pending -= len(msgs)
                for msg in msgs:
                    yield msg
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
