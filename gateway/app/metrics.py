"""Prometheus metrics, read from the core's plain counters when /metrics is scraped.

The fan-out and publish paths only bump integers (gateway.core.tally); this collector turns
them into metric families on each scrape, so a busy gateway pays for metrics per scrape,
not per event. Each gateway has its own registry (several can share a test process).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from gateway.api.grpc.access import CallLog
from gateway.api.http.bodies import BodyReader
from gateway.api.http.front_limits import FrontLimits
from gateway.api.otlp.limits import OtlpLimits
from gateway.core.admission import Admission
from gateway.core.broker import Broker
from gateway.core.hub import Hub
from gateway.core.ingest import Ingest
from gateway.core.tally import ByteCount, Histogram
from gateway.core.tokens import Verifier

PREFIX = "logs_gateway_"
TRANSPORTS = ("sse", "grpc")
STREAMING_METHODS = ("LogIngest/Publish", "LogStream/Subscribe")
LOOP_LAG_EVERY = 0.1  # seconds between the loop-lag monitor's timers
LOOP_LAG_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class LoopLag:
    """How late the event loop runs a timer due every LOOP_LAG_EVERY seconds: how long
    other work (a long replay, a garbage collection) held the one loop that every stream
    and every publish of this process waits on. One observation per timer, so a loop held
    5 s is one observation of about 5 s."""

    def __init__(self, every: float = LOOP_LAG_EVERY) -> None:
        self.every = every
        self.seconds = Histogram(LOOP_LAG_BOUNDS)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.every
            await asyncio.sleep(self.every)
            self.seconds.observe(max(0.0, loop.time() - due))


@dataclass(frozen=True, slots=True)
class Sources:
    """The live objects whose counters the collector reads."""

    hub: Hub
    ingest: Ingest
    broker: Broker
    verifier: Verifier
    sse_bytes: ByteCount
    grpc_calls: CallLog
    draining: Callable[[], bool]
    loop_lag: LoopLag
    publish_streams: Admission
    bodies: BodyReader
    otlp_limits: OtlpLimits
    front: FrontLimits


def build_registry(sources: Sources) -> CollectorRegistry:
    """A registry with the gateway's metrics and the standard process_* / python_* ones."""
    registry = CollectorRegistry()
    registry.register(GatewayCollector(sources))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class GatewayCollector:
    def __init__(self, sources: Sources) -> None:
        self._s = sources

    def collect(self) -> Iterator[Metric]:
        yield from self._streams()
        yield from self._limits()
        yield _labelled(
            CounterMetricFamily,
            "bodies_refused",
            "HTTP bodies refused while read, by limit (inflated_size: --max-message-bytes;"
            " inflation_ratio: --max-inflation-ratio).",
            ("limit",),
            [((limit,), n) for limit, n in self._s.bodies.refused.items()],
        )
        yield _labelled(
            CounterMetricFamily,
            "otlp_requests_refused",
            "OTLP requests refused whole before conversion, by limit (records, parts,"
            " resource_attributes, scope_attributes, resource_values, resource_bytes, fields).",
            ("limit",),
            [((limit,), n) for limit, n in self._s.otlp_limits.refused.items()],
        )
        yield _labelled(
            CounterMetricFamily,
            "http_connections_ended",
            "HTTP connections the front ended, by reason: a head refused (400, 414, 431) or"
            " a timeout (head_timeout, body_timeout: --http-header-timeout; idle_timeout:"
            " --http-idle-timeout; linger_timeout: a refused body still coming after 10 s)"
            " or refused at accept (connection_limit: --max-http-connections).",
            ("reason",),
            [((reason,), n) for reason, n in self._s.front.refused.items()],
        )
        yield from self._entries()
        yield from self._failures()
        yield from self._issuers()
        yield _histogram(
            "event_loop_lag_seconds",
            "Seconds the event loop ran a timer late (one timer each 0.1 s): time it was held.",
            self._s.loop_lag.seconds,
        )

    def _streams(self) -> Iterator[Metric]:
        s = self._s
        by_transport = s.hub.count_by_transport()
        yield _gauge("sse_connections", "Open SSE connections.", by_transport["sse"])
        yield _gauge(
            "http_connections",
            "Open connections to the HTTP port (--max-http-connections).",
            s.front.open,
        )
        yield _labelled(
            GaugeMetricFamily,
            "subscriptions",
            "Open live subscriptions (SSE connections and gRPC Subscribe streams).",
            ("transport",),
            [((t,), by_transport[t]) for t in TRANSPORTS],
        )
        open_calls = dict.fromkeys(STREAMING_METHODS, 0) | s.grpc_calls.open
        yield _labelled(
            GaugeMetricFamily,
            "grpc_streams",
            "gRPC calls in progress.",
            ("method",),
            [((m,), n) for m, n in open_calls.items()],
        )
        usage = s.broker.usage()
        yield _gauge("channels", "Channels holding history.", usage.channels)
        if usage.entries is not None:
            yield _gauge("history_entries", "Entries held in history.", usage.entries)
        if usage.bytes is not None:
            yield _gauge("history_bytes", "Bytes history holds (--max-history-bytes).", usage.bytes)
        yield _labelled(
            CounterMetricFamily,
            "history_evicted",
            "Entries evicted from history, by cause (age, count, memory).",
            ("cause",),
            [((cause,), n) for cause, n in usage.evicted.items()],
        )
        yield _labelled(
            CounterMetricFamily,
            "broker_bounds_reached",
            "Reads the broker refused or answered as a lower bound at a bound of its own, by"
            " bound (NATS: listed_channels, --nats-listed-channels; lost_channels,"
            " --nats-lost-channels).",
            ("bound",),
            [((bound,), n) for bound, n in usage.bounds_reached.items()],
        )
        yield _gauge(
            "subscribed_channels",
            "Channels and patterns with at least one live subscriber.",
            len(s.hub.stats()["subscribers_per_channel"]),
        )
        yield _gauge("draining", "1 while the gateway drains.", int(s.draining()))

    def _limits(self) -> Iterator[Metric]:
        admissions = (self._s.hub.admission, self._s.publish_streams)
        yield _labelled(
            GaugeMetricFamily,
            "stream_limit",
            "Streams allowed, by kind (subscribe, publish) and limit (total per process,"
            " per_token).",
            ("kind", "limit"),
            [((a.limit.kind, "total"), a.limit.total) for a in admissions]
            + [((a.limit.kind, "per_token"), a.limit.per_token) for a in admissions],
        )
        yield _labelled(
            GaugeMetricFamily,
            "streams_open",
            "Open streams by kind (subscribe: SSE and gRPC Subscribe; publish: gRPC Publish).",
            ("kind",),
            [((a.limit.kind,), a.open) for a in admissions],
        )
        yield _labelled(
            CounterMetricFamily,
            "streams_refused",
            "Streams refused at a limit, by kind and limit (total, per_token).",
            ("kind", "limit"),
            [((a.limit.kind, which), n) for a in admissions for which, n in a.refused.items()],
        )
        dedup = self._s.broker.usage().dedup_bytes
        if dedup is not None:
            yield _gauge(
                "dedup_bytes", "Bytes kept to recognise resent batches (--max-dedup-bytes).", dedup
            )

    def _entries(self) -> Iterator[Metric]:
        s = self._s
        counts = s.ingest.counts
        yield _labelled(
            CounterMetricFamily,
            "entries_received",
            "Entries published, by service (capped; rest 'other') and outcome.",
            ("service", "outcome"),
            counts.entries.items(),
        )
        yield _counter(
            "entries_delivered",
            "Live entries handed to subscribers (entry x subscriber).",
            s.hub.delivered,
        )
        yield _counter("sse_bytes_sent", "Bytes written to SSE connections.", s.sse_bytes.total)
        yield _histogram(
            "publish_latency_seconds",
            "Seconds from a batch reaching the publish path to its answer (ack).",
            counts.latency,
        )

    def _failures(self) -> Iterator[Metric]:
        s = self._s
        ended = s.hub.counts.ended
        yield _by_reason(
            "streams_ended",
            "Subscriptions ended, by reason (closed, slow_consumer, shutdown, error).",
            ended,
        )
        yield _counter(
            "slow_consumer_drops",
            "Subscriptions dropped because their send buffer was full.",
            ended["slow_consumer"],
        )
        gaps = s.hub.counts
        yield _by_reason("gaps", "Gap events sent on resume (trimmed or reset).", gaps.gaps)
        yield _by_reason("gap_entries", "Entries that gap events reported lost.", gaps.lost)
        yield _by_reason(
            "auth_failures",
            "Tokens refused, by reason (missing, expired, bad_signature, ...).",
            s.verifier.refusals,
        )
        yield _counter(
            "broker_errors", "Broker failures on the publish path.", s.ingest.counts.broker_errors
        )
        yield _gauge(
            "token_cache_entries",
            "Verified tokens remembered until they expire.",
            s.verifier.cached,
        )
        yield _counter(
            "token_cache_hits",
            "Requests whose token was verified before (no signature check).",
            s.verifier.cache_hits,
        )

    def _issuers(self) -> Iterator[Metric]:
        """Each trusted issuer by its `iss` (from the configuration: a bounded set)."""
        status = self._s.verifier.status()
        yield _labelled(
            GaugeMetricFamily,
            "issuer_keys_usable",
            "1 while an issuer's keys are trusted; 0: never fetched or past max_stale_seconds,"
            " its tokens are refused.",
            ("issuer",),
            [((name,), float(st.usable)) for name, st in status.items()],
        )
        yield _labelled(
            GaugeMetricFamily,
            "issuer_keys_age_seconds",
            "Seconds since an issuer's keys were last fetched from its provider.",
            ("issuer",),
            [((name,), st.age) for name, st in status.items() if st.age is not None],
        )
        yield _labelled(
            CounterMetricFamily,
            "issuer_key_fetches",
            "Fetches of issuers' keys (discovery and JWKS), by result (ok, timeout, ...).",
            ("issuer", "result"),
            [((name, r), n) for name, st in status.items() for r, n in st.fetches.items()],
        )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, doc, value=value)


def _histogram(name: str, doc: str, histogram: Histogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(
        PREFIX + name,
        doc,
        buckets=[(_le(bound), n) for bound, n in histogram.cumulative()],
        sum_value=histogram.sum,
    )


def _by_reason(name: str, doc: str, counts: Mapping[str, int]) -> Metric:
    return _labelled(
        CounterMetricFamily, name, doc, ("reason",), [((r,), n) for r, n in counts.items()]
    )


def _labelled(
    kind: type[GaugeMetricFamily] | type[CounterMetricFamily],
    name: str,
    doc: str,
    labels: tuple[str, ...],
    values: Iterable[tuple[tuple[str, ...], float]],
) -> Metric:
    family = kind(PREFIX + name, doc, labels=labels)
    for label_values, value in sorted(values):
        family.add_metric(list(label_values), value)
    return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
