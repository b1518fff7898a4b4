"""/metrics: Prometheus text that parses, counters that move, labels that stay bounded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from logs_gateway.v1 import logs_pb2 as pb
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from gateway.core import sse
from gateway.core.broker import Gap
from gateway.core.catch_up import CatchUp
from gateway.core.channels import parse_pattern
from gateway.core.errors import Code, GatewayError
from gateway.core.events import Entry
from gateway.core.hub import Hub
from gateway.core.meter import Meter
from gateway.core.subscription import StreamSubscription
from gateway.core.tally import OTHER, Histogram, HubCounts, IngestCounts, LabelCap
from tests.conftest import Running, entry, running_gateway
from tests.sse_client import open_stream

ETL = "logs:etl:workspace123:workflow456"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(run: Running) -> Samples:
    """Every sample of /metrics, keyed by (name, sorted labels); parsed by prometheus-client."""
    async with httpx.AsyncClient() as client:
        response = await client.get(run.http + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[s.name, tuple(sorted(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_counters_move_after_publish_and_subscription(gw: Running) -> None:
    before = await scrape(gw)
    assert value(before, "logs_gateway_sse_connections") == 0
    sub = gw.token(subscribe=[ETL])
    pub = gw.token("etl-service", publish=[ETL])
    async with open_stream(gw.http, ETL, sub) as stream:
        await stream.next()  # ready
        acks = await gw.publish(pub, [[entry(ETL, "one"), entry(ETL, "two")], [entry(ETL, "3")]])
        assert all(r.code == 0 for a in acks for r in a.results)
        await stream.take(3)
        during = await scrape(gw)
    assert value(during, "logs_gateway_sse_connections") == 1
    assert value(during, "logs_gateway_subscriptions", transport="sse") == 1
    assert value(during, "logs_gateway_subscribed_channels") == 1
    assert value(during, "logs_gateway_channels") == 1
    stored = ("logs_gateway_entries_received_total", {"service": "etl", "outcome": "stored"})
    assert value(during, stored[0], **stored[1]) - value(before, stored[0], **stored[1]) == 3
    assert value(during, "logs_gateway_entries_delivered_total") == 3
    assert value(during, "logs_gateway_sse_bytes_sent_total") > 0
    assert value(during, "logs_gateway_publish_latency_seconds_count") == 2
    assert value(during, "logs_gateway_publish_latency_seconds_bucket", le="+Inf") == 2
    assert value(during, "logs_gateway_publish_latency_seconds_sum") > 0
    await wait_until(gw, lambda s: value(s, "logs_gateway_sse_connections") == 0)
    after = await scrape(gw)
    assert value(after, "logs_gateway_streams_ended_total", reason="closed") == 1


async def test_refusals_and_auth_failures_are_counted_by_reason(gw: Running) -> None:
    pub = gw.token("etl-service", publish=[ETL])
    batch = [entry(ETL, "ok"), entry("logs:faas:w:f", "not mine"), entry(ETL, "")]
    await gw.publish(pub, [batch])
    async with httpx.AsyncClient() as client:
        await client.get(gw.http + "/api/logs/stream", params={"channels": ETL})
        expired = gw.signer.mint("late", subscribe=[ETL], ttl=1, extra={"exp": 1})
        await client.get(
            gw.http + "/api/logs/stream",
            params={"channels": ETL},
            headers=gw.headers(expired),
        )
    samples = await scrape(gw)
    received = "logs_gateway_entries_received_total"
    assert value(samples, received, service="etl", outcome="stored") == 1
    assert value(samples, received, service="etl", outcome="invalid_argument") == 1
    # A refused entry never adds a service label of its own.
    assert value(samples, received, service=OTHER, outcome="permission_denied") == 1
    assert value(samples, "logs_gateway_auth_failures_total", reason="missing") == 1
    assert value(samples, "logs_gateway_auth_failures_total", reason="expired") == 1


async def test_gaps_on_resume_past_history_are_counted() -> None:
    async with running_gateway(history_entries=2) as gw:
        sub = gw.token(subscribe=[ETL])
        pub = gw.token("etl-service", publish=[ETL])
        async with open_stream(gw.http, ETL, sub) as stream:
            cursor = (await stream.next()).id  # a live start's `ready` carries the head
        await gw.publish(pub, [[entry(ETL, f"e{i}") for i in range(5)]])
        async with open_stream(gw.http, ETL, sub, last_event_id=cursor) as stream:
            gap = await stream.take(1, kind="gap")
        samples = await scrape(gw)
    assert gap[0].data["lost"] == 3  # five published, two kept
    assert value(samples, "logs_gateway_gaps_total", reason="trimmed") == 1
    assert value(samples, "logs_gateway_gap_entries_total", reason="trimmed") == 3


async def test_grpc_streams_open_are_counted(gw: Running) -> None:
    stub, metadata = gw.ingest(gw.token("etl-service", publish=[ETL]))
    requests: asyncio.Queue[pb.PublishRequest | None] = asyncio.Queue()

    async def feed() -> AsyncIterator[pb.PublishRequest]:
        while (request := await requests.get()) is not None:
            yield request

    call = stub.Publish(feed(), metadata=metadata)
    await requests.put(pb.PublishRequest(producer_id="m", sequence=1, entries=[entry(ETL, "hi")]))
    await call.read()  # the ack: the stream is open
    samples = await scrape(gw)
    assert value(samples, "logs_gateway_grpc_streams", method="LogIngest/Publish") == 1
    await requests.put(None)
    await call.code()
    await wait_until(
        gw, lambda s: value(s, "logs_gateway_grpc_streams", method="LogIngest/Publish") == 0
    )


async def wait_until(run: Running, predicate: Callable[[Samples], bool]) -> None:
    deadline = time.monotonic() + 5
    while not predicate(await scrape(run)):
        assert time.monotonic() < deadline, "metric did not reach the expected value"
        await asyncio.sleep(0.02)


# -- the core's counters, without a server ---------------------------------------------


def test_label_cap_folds_new_values_into_other() -> None:
    cap = LabelCap(2)
    assert [cap.label(v, admit=True) for v in ("a", "b", "c", "a")] == ["a", "b", OTHER, "a"]
    assert LabelCap(5).label("x", admit=False) == OTHER


def test_service_labels_stay_bounded() -> None:
    counts = IngestCounts(max_services=3)
    for i in range(50):
        batch = [_entry(f"logs:svc{i}:w")]
        counts.record(batch, batch, duplicate=False, started=time.monotonic())
    services = {service for service, _ in counts.entries}
    assert services == {"svc0", "svc1", "svc2", OTHER}
    assert counts.entries[OTHER, "stored"] == 47


def test_outcomes_of_a_mixed_and_a_duplicate_batch() -> None:
    counts = IngestCounts()
    good, bad = _entry(ETL), _entry("logs:etl:w")
    error = GatewayError(Code.PERMISSION_DENIED, "no")
    decode_error = GatewayError(Code.INVALID_ARGUMENT, "bad field")
    counts.record([good, bad, decode_error], [good, error, decode_error], False, time.monotonic())
    counts.record([good], [good], True, time.monotonic())
    assert dict(counts.entries) == {
        ("etl", "stored"): 1,
        ("etl", "permission_denied"): 1,
        ("unknown", "invalid_argument"): 1,
        ("etl", "duplicate"): 1,
    }


def test_histogram_is_cumulative_with_inclusive_bounds() -> None:
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 3.0):
        h.observe(v)
    assert h.cumulative() == [(0.1, 2), (1.0, 3), (float("inf"), 4)]
    assert h.sum == pytest.approx(3.65)


def test_hub_counts_gaps() -> None:
    counts = HubCounts()
    counts.add_gaps([Gap("logs:a:b", 3, "trimmed"), Gap("logs:a:c", 2, "reset")])
    assert counts.gaps == {"trimmed": 1, "reset": 1}
    assert counts.lost == {"trimmed": 3, "reset": 2}


class _FullSink:
    """A connection whose peer reads nothing: everything stays pending."""

    aborted = False

    def write(self, data: bytes) -> None:
        pass

    def pending_bytes(self) -> int:
        return 10**9

    def sent_bytes(self) -> int:
        return 0

    def abort(self) -> None:
        self.aborted = True


async def test_slow_consumer_drop_is_counted() -> None:
    hub = Hub(epoch=lambda: "e1", max_per_owner=16, max_streams=100)
    sink = _FullSink()
    sub = StreamSubscription("c1", (parse_pattern(ETL),), 0, "owner", sink, max_buffer=1024)
    await hub.add(sub)
    hub.start(sub, CatchUp(None, 0))
    sub.heartbeat(sse.PING)  # the first write finds the buffer full
    hub.remove(sub)
    assert sink.aborted
    assert hub.counts.ended == {"slow_consumer": 1}


def _entry(channel: str) -> Entry:
    return Entry(channel, 1, 9, "m", "s", {})


async def test_openmetrics_when_the_scraper_asks(gw: Running) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            gw.http + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    names = {f.name for f in openmetrics_families(response.text)}
    assert {"logs_gateway_entries_received", "logs_gateway_publish_latency_seconds"} <= names


async def test_admin_stats_and_metrics_count_the_same_refusals() -> None:
    async with running_gateway(max_batch_entries=3) as gw:
        pub = gw.token("etl-service", publish=[ETL])
        await gw.publish(pub, [[entry(ETL, "ok"), entry(ETL, "")]])  # one stored, one refused
        await gw.publish(pub, [[entry(ETL, f"m{i}") for i in range(4)]], producer="big")
        samples = await scrape(gw)
        async with httpx.AsyncClient() as client:
            response = await client.get(
                gw.http + "/admin/logs/stats", headers=gw.headers(gw.token(admin=True))
            )
        stats = response.json()
    received = "logs_gateway_entries_received_total"
    refused = sum(
        v
        for (name, labels), v in samples.items()
        if name == received and dict(labels)["outcome"] not in ("stored", "duplicate")
    )
    # The batch over the limit is refused whole: 4 entries, counted on both sides.
    assert refused == stats["entries_refused"] == 5
    assert value(samples, received, service="etl", outcome="stored") == stats["entries_stored"] == 1
    assert stats["entries_per_second"] >= 1  # over the seconds covered, not always 60


def test_a_rate_divides_by_the_time_it_covers() -> None:
    meter = Meter()
    meter.add(30, time.monotonic())
    assert meter.rate() == 30  # within the first second: 30 in 1 s, not 30 in 60
