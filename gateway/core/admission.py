"""Admission of long-lived streams: a total per process, and a count per token.

The total bounds this process's memory, so this process counts it. A per-token count bounds
what one token may hold in the whole gateway, so with the Redis broker it is counted where
every worker and instance sees it (`SharedCounts`, gateway.core.stream_counts); alone, a
process counts it itself. Past either limit a stream is refused with a message that names
the limit and its setting.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from gateway.core.errors import Code, GatewayError

# A refused client should not come straight back: the SDK and browsers wait this long.
RETRY_AFTER = 1.0


@dataclass(frozen=True, slots=True)
class Limit:
    """One kind of stream's limits and the settings that set them (named in refusals)."""

    kind: str  # "subscribe" or "publish": the metrics label and the shared counts' key
    noun: str  # what the refusal calls them, e.g. "open streams"
    total: int
    total_setting: str
    per_token: int
    per_token_setting: str


def subscribe_limit(total: int, per_token: int) -> Limit:
    """SSE and gRPC Subscribe streams together."""
    streams = "open streams"
    return Limit(
        "subscribe", streams, total, "--max-streams", per_token, "--max-connections-per-token"
    )


def publish_limit(total: int, per_token: int) -> Limit:
    """gRPC Publish streams (HTTP publishing is one request, not a stream)."""
    streams, setting = "open publish streams", "--max-publish-streams"
    return Limit("publish", streams, total, setting, per_token, f"{setting}-per-token")


class SharedCounts(Protocol):
    """Per-token counts of open streams that every instance sees."""

    async def take(self, kind: str, owner: str, stream: str, limit: int) -> bool | None:
        """Count `stream` for `owner` unless it already holds `limit`; whether it did, or
        None when the shared counts cannot be reached (this process then counts alone)."""
        ...

    def give_back(self, kind: str, owner: str, stream: str) -> None:
        """Stop counting `stream` (in the background; a lost call expires on its own)."""
        ...


class Admission:
    def __init__(self, limit: Limit, shared: SharedCounts | None = None) -> None:
        self.limit = limit
        self._shared = shared
        self._by_owner: Counter[str] = Counter()  # this process's open streams per token
        self._admitting = 0  # streams waiting for the shared counts, held against the total
        self.open = 0
        self.refused: Counter[str] = Counter()  # by limit: "total", "per_token"

    async def admit(self, owner: str, stream: str) -> None:
        """Count `stream` of `owner`, or raise RATE_LIMITED naming the limit reached."""
        limit = self.limit
        if self.open + self._admitting >= limit.total:
            raise self._refusal(
                "total", f"the gateway already has {limit.total} {limit.noun}", limit.total_setting
            )
        admitted: bool | None = None
        if self._shared is not None:
            self._admitting += 1
            try:
                admitted = await self._shared.take(limit.kind, owner, stream, limit.per_token)
            finally:
                self._admitting -= 1
        if admitted is None:  # no shared counts, or out of reach: a live stream still starts
            admitted = self._by_owner[owner] < limit.per_token
        if not admitted:
            raise self._refusal(
                "per_token",
                f"this token already has {limit.per_token} {limit.noun}",
                limit.per_token_setting,
            )
        self.open += 1
        self._by_owner[owner] += 1

    def release(self, owner: str, stream: str) -> None:
        """Stop counting a stream `admit` counted."""
        self.open -= 1
        self._by_owner[owner] -= 1
        if not self._by_owner[owner]:
            del self._by_owner[owner]
        if self._shared is not None:
            self._shared.give_back(self.limit.kind, owner, stream)

    @property
    def owners(self) -> int:
        """Tokens with an open stream in this process."""
        return len(self._by_owner)

    def _refusal(self, which: str, message: str, setting: str) -> GatewayError:
        self.refused[which] += 1
        return GatewayError(
            Code.RATE_LIMITED,
            f"{message} ({setting}); close one or retry later",
            reason=f"max_{self.limit.kind}_{which}",
            retry_after=RETRY_AFTER,
        )
