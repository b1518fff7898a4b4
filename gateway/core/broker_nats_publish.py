"""Appends on the NATS broker: one JetStream message per batch and channel.

Offsets are per channel and JetStream keeps no counter per subject, so each message says
which message of its channel it follows (`Nats-Expected-Last-Subject-Sequence`): the
stream refuses it if another writer got there first, and the publisher reads the
channel's newest message and tries again. This process remembers where each channel it
wrote to stands (LINKS_MAX of them, least recent dropped), and appends to one channel one
at a time, so a channel written by one gateway costs one round trip per batch; the
channels of a batch are published concurrently.

De-duplication is JetStream's: each message's `Nats-Msg-Id` is the producer, the batch's
sequence and the channel, recognised for the stream's duplicate window; a duplicate's
answer is read back from the message first stored (its offsets and seqs).
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import Sequence

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.errors import APIError, NotFoundError

from gateway.core import broker_errors
from gateway.core import broker_nats_codec as codec
from gateway.core.broker import DedupKey
from gateway.core.broker_nats_codec import Link
from gateway.core.broker_nats_subjects import SLOTS, channel_subject, subject_channel
from gateway.core.errors import Code, GatewayError
from gateway.core.events import Entry, Event

LINKS_MAX = 100_000  # channels whose newest message this process remembers
RETRIES = 12  # attempts at one channel's message when other writers keep getting there first
BACKOFF = 0.001  # seconds: the first retry's longest pause (doubling with each)
_WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for a failed expected-sequence check
_EXPECTED = "Nats-Expected-Last-Subject-Sequence"
_MSG_ID = "Nats-Msg-Id"


class Publisher:
    """Stores batches in the stream named `stream` (which is also the subject prefix)."""

    def __init__(self, nc: Client, stream: str, timeout: float) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=timeout)
        self._stream = stream
        self._timeout = timeout
        self._links: OrderedDict[str, Link] = OrderedDict()
        self._busy: dict[str, asyncio.Lock] = {}  # channels being appended to now
        self._waiting: dict[str, int] = {}  # appends holding or awaiting each of those locks

    async def append(
        self, entries: Sequence[Entry], key: DedupKey | None
    ) -> tuple[list[Event], bool]:
        """The events stored (in the order of `entries`) and whether the batch was a
        duplicate; raises GatewayError UNAVAILABLE when the stream did not confirm."""
        if not self._nc.is_connected:
            raise unavailable()
        groups: dict[str, list[int]] = {}
        for i, entry in enumerate(entries):
            groups.setdefault(entry.channel, []).append(i)
        results = await asyncio.gather(
            *(
                self._channel(name, [entries[i] for i in places], key)
                for name, places in groups.items()
            ),
            return_exceptions=True,
        )
        events: list[Event | None] = [None] * len(entries)
        duplicate = bool(groups)
        for places, result in zip(groups.values(), results, strict=True):
            if isinstance(result, BaseException):
                raise result
            stored, was_duplicate = result
            duplicate = duplicate and was_duplicate
            for i, event in zip(places, stored, strict=True):
                events[i] = event
        return [e for e in events if e is not None], duplicate

    async def _channel(
        self, name: str, entries: list[Entry], key: DedupKey | None
    ) -> tuple[list[Event], bool]:
        """One channel's part of a batch (SLOTS entries a message at most)."""
        self._waiting[name] = self._waiting.get(name, 0) + 1
        lock = self._busy.setdefault(name, asyncio.Lock())
        try:
            async with lock:
                out: list[Event] = []
                duplicate = True
                for part, start in enumerate(range(0, len(entries), SLOTS)):
                    msg_id = f"{key[0]}/{key[1]}/{name}/{part}" if key is not None else None
                    events, was = await self._message(name, entries[start : start + SLOTS], msg_id)
                    out += events
                    duplicate = duplicate and was
                return out, duplicate
        finally:
            self._waiting[name] -= 1
            if not self._waiting[name]:
                del self._waiting[name], self._busy[name]

    async def _message(
        self, name: str, entries: list[Entry], msg_id: str | None
    ) -> tuple[list[Event], bool]:
        subject = channel_subject(self._stream, name)
        link = self._links.get(name) or await self._newest(name)
        for attempt in range(RETRIES):
            draft = codec.encode(name, entries, link)
            headers = draft.headers
            headers[_EXPECTED] = str(link.seq)
            if msg_id is not None:
                headers[_MSG_ID] = msg_id
            try:
                ack = await self._js.publish(subject, draft.payload, self._timeout, headers=headers)
            except APIError as e:
                if e.err_code != _WRONG_LAST_SEQUENCE:
                    raise refused(e) from None
                # Another writer came first: back off a random while (so writers that keep
                # colliding spread out), then go on from where the channel now stands.
                await asyncio.sleep(random.uniform(0, BACKOFF * 2**attempt))  # noqa: S311 (jitter)
                link = await self._newest(name)
                continue
            except (NatsError, TimeoutError):
                raise unavailable() from None
            if ack.duplicate:
                return await self._first_answer(name, ack.seq), True
            count, life = len(entries), link.life or ack.seq
            self._remember(name, Link(ack.seq, count, link.next_offset + count, life))
            return draft.events(ack.seq), False
        raise GatewayError(
            Code.UNAVAILABLE, f"channel {name} is busy with other writers; retry", reason="broker"
        )

    def _remember(self, name: str, link: Link) -> None:
        self._links[name] = link
        self._links.move_to_end(name)
        if len(self._links) > LINKS_MAX:
            self._links.popitem(last=False)

    async def _newest(self, name: str) -> Link:
        """Where the channel stands in the stream now (read at the stream's leader)."""
        subject = channel_subject(self._stream, name)
        try:
            msg = await self._js.get_last_msg(self._stream, subject)
        except NotFoundError:
            return Link()
        except (NatsError, TimeoutError):
            raise unavailable() from None
        return codec.decode(name, msg.seq or 0, msg.headers, msg.data or b"").link()

    async def _first_answer(self, name: str, seq: int) -> list[Event]:
        """The events of the message first stored for a resent one."""
        try:
            msg = await self._js.get_msg(self._stream, seq)
        except (NatsError, TimeoutError):
            raise unavailable() from None
        return codec.decode(
            subject_channel(self._stream, msg.subject or ""), seq, msg.headers, msg.data or b""
        ).events()


def refused(error: APIError) -> GatewayError:
    """A JetStream refusal: retry later when it may pass (no leader, storage full), else a
    failure retrying cannot fix (INTERNAL, logged with its cause)."""
    transient = error.code in (503, 408) or error.err_code in (10077, 10047, 10023)
    text = f"{error.description} (code {error.err_code})"
    return broker_errors.refused("NATS", text, transient=transient)


def unavailable() -> GatewayError:
    return broker_errors.unavailable("NATS")
