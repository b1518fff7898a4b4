"""The publish path shared by gRPC and HTTP: check each entry, store the good ones, answer.

A bad or forbidden entry is refused on its own; the rest of its batch and of its stream go
on. Checks depend only on the token and the entry, so a batch resent after a reconnect gets
the same answer, and the broker's de-duplication returns the same offsets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from gateway.core.broker import Broker, DedupKey
from gateway.core.channels import channel_pattern
from gateway.core.errors import Code, GatewayError, invalid
from gateway.core.events import MAX_SEVERITY, Entry, Event
from gateway.core.lru import Lru
from gateway.core.ratelimit import RateLimiter
from gateway.core.tally import IngestCounts
from gateway.core.tokens import Principal

# Verdicts kept on (token, channel): a publisher sends to a few channels at a time, request
# after request, so each checks its rights once; past this many the least recently used go.
MAX_VERDICTS = 10_000
Verdict = GatewayError | None  # why a token may not publish to a channel, or None


@dataclass(frozen=True, slots=True)
class Limits:
    max_entry_bytes: int
    max_batch_entries: int
    publish_rate: float  # entries per second per token subject; 0: no limit


@dataclass(slots=True)  # one per batch: not frozen, for the reason Entry is not (events.py)
class BatchOutcome:
    """One answer per entry, in order: the event it was stored as (its cursor is
    `encode_cursor(epoch, event.seq)`), or the error that refused it."""

    outcomes: Sequence[Event | GatewayError]
    duplicate: bool
    epoch: str = ""


class Ingest:
    def __init__(self, broker: Broker, limits: Limits, max_verdicts: int = MAX_VERDICTS) -> None:
        self._broker = broker
        self._limits = limits
        self.verdicts: Lru[tuple[Principal, str], Verdict] = Lru(max_verdicts)
        self._rate = RateLimiter(limits.publish_rate) if limits.publish_rate > 0 else None
        self.counts = IngestCounts()

    async def publish(
        self,
        principal: Principal,
        items: Sequence[Entry | GatewayError],
        key: DedupKey | None = None,
    ) -> BatchOutcome:
        """Store every acceptable entry of a batch; one Outcome per item, in order.

        `items` holds entries, or the error a transport found while decoding one. An
        accepted entry without a time or source gets them: now, and the token's subject.
        """
        started = time.monotonic()
        if len(items) > self._limits.max_batch_entries:
            error = GatewayError(
                Code.TOO_LARGE,
                f"batch has {len(items)} entries; at most {self._limits.max_batch_entries}",
            )
            self.counts.record(items, [error] * len(items), False, started)
            return BatchOutcome([error] * len(items), duplicate=False)
        if self._rate is not None and (wait := self._rate.charge(principal.subject, len(items))):
            error = rate_limited(self._rate.rate, wait)
            self.counts.record(items, [error] * len(items), False, started)
            raise error
        checked: list[Entry | GatewayError] = []
        accepted: list[Entry] = []
        for i, item in enumerate(items):
            verdict = self._check(principal, item, i)
            checked.append(verdict)
            if isinstance(verdict, Entry):
                accepted.append(verdict)
        try:
            appended = await self._broker.append(accepted, key)
        except Exception:
            self.counts.broker_errors += 1
            raise
        outcomes: Sequence[Event | GatewayError] = appended.events
        if len(accepted) < len(checked):
            stored = iter(appended.events)
            outcomes = [next(stored) if isinstance(c, Entry) else c for c in checked]
        self.counts.record(items, checked, appended.duplicate, started)
        return BatchOutcome(outcomes, appended.duplicate, self._broker.epoch)

    def _check(
        self, principal: Principal, item: Entry | GatewayError, index: int
    ) -> Entry | GatewayError:
        if isinstance(item, GatewayError):
            return item
        refusal = self.verdicts.get((principal, item.channel), _verdict)
        if refusal is None:
            try:
                check_entry(item, self._limits.max_entry_bytes)
            except GatewayError as e:
                refusal = e
        if refusal is not None:
            return GatewayError(
                refusal.code, f"entry {index}: {refusal.message}", reason=refusal.reason
            )
        # Filled in place, not in a copy (a dataclass built per entry): every transport
        # decodes a batch into entries of its own, which nothing else holds.
        if item.time_ns == 0:
            item.time_ns = time.time_ns()
        if not item.source:
            item.source = principal.subject
        return item


def rate_limited(rate: float, wait: float) -> GatewayError:
    """The refusal of a whole batch over its token's publish rate, with when to retry."""
    return GatewayError(
        Code.RATE_LIMITED,
        f"publish rate of {rate:g} entries/s for this token exceeded; "
        f"retry after {math.ceil(wait * 1000)} ms",
        reason="rate",
        retry_after=wait,
    )


def _verdict(asked: tuple[Principal, str]) -> Verdict:
    """Why a token may not publish to a channel (bad name, or outside its rights), or None.
    Kept in Ingest.verdicts: without its traceback, whose frames would keep the request
    that asked (and all it holds) alive as long as the verdict is."""
    principal, channel = asked
    try:
        principal.check_publish(channel_pattern(channel))
    except GatewayError as e:
        return e.with_traceback(None)
    return None


def check_entry(entry: Entry, max_bytes: int) -> None:
    message, source, attributes = entry.message, entry.source, entry.attributes
    if not message or message.isspace():
        raise invalid("message is empty")
    if not 0 <= entry.severity <= MAX_SEVERITY:
        raise invalid(f"severity {entry.severity} is outside 0-{MAX_SEVERITY}")
    # Strict encoding: what cannot be stored as JSON (a lone surrogate, an integer past
    # 64 bits) is refused here, alone, rather than failing the broker mid-batch. ASCII
    # text (known without a scan) is one byte a character and has nothing to refuse.
    try:
        size = len(message) if message.isascii() else len(message.encode())
        size += len(source) if source.isascii() else len(source.encode())
        size += len(orjson.dumps(attributes)) if attributes else 2
    except (UnicodeEncodeError, TypeError):
        raise invalid(
            "message, source and attributes must be valid Unicode text and 64-bit numbers"
        ) from None
    if size > max_bytes:
        raise GatewayError(Code.TOO_LARGE, f"entry is {size} bytes; at most {max_bytes}")
