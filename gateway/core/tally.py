"""Plain counters the core keeps for /metrics: an integer add on the hot paths, read at scrape.

No metrics library here. The app's Prometheus collector reads these when it is scraped, so
the fan-out pays nothing per event per subscriber and the publish path one update per batch.
Every label value is bounded: outcomes and reasons come from fixed code paths, and service
names (a channel's second segment) are capped, the rest folded into "other".
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Iterable, Sequence

from gateway.core.broker import Gap
from gateway.core.errors import GatewayError
from gateway.core.events import Entry
from gateway.core.lru import Lru
from gateway.core.meter import Meter

OTHER = "other"
UNKNOWN = "unknown"
MAX_SERVICES = 32
# Channels whose service label is kept, so a channel published to again is not split and
# looked up anew; past this many the least recently published go (channel names, at most).
MAX_LABELLED_CHANNELS = 1024
# Publish-to-ack seconds: tens of microseconds in memory, milliseconds through Redis.
LATENCY_BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class LabelCap:
    """Keeps at most `limit` distinct values of a label; any later value reads as "other"."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._known: set[str] = set()

    def label(self, value: str, *, admit: bool) -> str:
        """`value` if known, or newly admitted while there is room; else "other".

        Only values seen on stored entries are admitted, so refused traffic (which anyone
        with a token can make up) cannot use up the room.
        """
        if value in self._known:
            return value
        if admit and len(self._known) < self._limit:
            self._known.add(value)
            return value
        return OTHER


class Histogram:
    """Counts per fixed bucket plus a running sum, like a Prometheus histogram."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self._counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= bound) for every bound, ending with +Inf."""
        out, total = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self._counts, strict=True):
            total += count
            out.append((bound, total))
        return out


class IngestCounts:
    """What the publish path accepted and refused, by service and outcome, and how fast."""

    def __init__(self, max_services: int = MAX_SERVICES) -> None:
        # (service, outcome) -> entries. A plain dict: a Counter's `+=` cost the publish path
        # three times a dict's.
        self.entries: dict[tuple[str, str], int] = {}
        self.stored_rate = Meter()  # the same stored entries, over the last minute
        self.latency = Histogram(LATENCY_BOUNDS)
        self.broker_errors = 0
        self._services = LabelCap(max_services)
        self._labels: Lru[str, str] = Lru(MAX_LABELLED_CHANNELS)  # channel -> final label

    def record(
        self,
        items: Sequence[Entry | GatewayError],
        checked: Sequence[Entry | GatewayError],
        duplicate: bool,
        started: float,
    ) -> None:
        """Count one answered batch: `checked` is the verdict on each of `items`; `started`
        (time.monotonic) when it arrived. The clock is read once here for the latency and
        the rate both."""
        now = time.monotonic()
        self.latency.observe(now - started)
        outcome = "duplicate" if duplicate else "stored"
        accepted: dict[str, int] = {}  # channel -> entries (a plain dict: once per batch)
        for c in checked:
            if isinstance(c, Entry):
                accepted[c.channel] = accepted.get(c.channel, 0) + 1
        entries, labels, total = self.entries, self._labels, 0
        for channel, n in accepted.items():
            key = (labels.find(channel) or self._service(channel, admit=not duplicate), outcome)
            entries[key] = entries.get(key, 0) + n
            total += n
        if not duplicate:
            self.stored_rate.add(total, now)
        if total < len(checked):
            self._record_refused(items, checked)

    def total(self, *outcomes: str) -> int:
        """Entries answered with any of `outcomes`; with none given, every refusal."""
        if outcomes:
            return sum(n for (_, o), n in self.entries.items() if o in outcomes)
        return sum(n for (_, o), n in self.entries.items() if o not in ("stored", "duplicate"))

    def _record_refused(
        self, items: Sequence[Entry | GatewayError], checked: Sequence[Entry | GatewayError]
    ) -> None:
        for item, verdict in zip(items, checked, strict=True):
            if isinstance(verdict, GatewayError):
                channel = item.channel if isinstance(item, Entry) else ""
                key = (self._service(channel, admit=False), verdict.code.slug)
                self.entries[key] = self.entries.get(key, 0) + 1

    def _service(self, channel: str, *, admit: bool) -> str:
        """The service segment of `logs:{service}:...` as a label, "unknown" for a malformed
        name. Kept for the channel unless "other" (its service may be admitted later)."""
        parts = channel.split(":", 2)
        if len(parts) < 3 or not parts[1]:
            label = UNKNOWN
        else:
            label = self._services.label(parts[1], admit=admit)
        if label != OTHER:
            self._labels.add(channel, label)
        return label


class HubCounts:
    """How subscriptions ended (by reason) and the gaps their replays reported."""

    def __init__(self) -> None:
        self.ended: Counter[str] = Counter()  # "closed", "slow_consumer", "shutdown", ...
        self.gaps: Counter[str] = Counter()  # gap events sent, by reason
        self.lost: Counter[str] = Counter()  # entries those gaps reported lost, by reason

    def add_gaps(self, gaps: Iterable[Gap]) -> None:
        for gap in gaps:
            self.gaps[gap.reason] += 1
            self.lost[gap.reason] += gap.lost


class ByteCount:
    """A running byte total shared by many writers (every SSE connection of a gateway)."""

    __slots__ = ("total",)

    def __init__(self) -> None:
        self.total = 0
