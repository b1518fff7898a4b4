"""Simulated services for demos and tests: an L5-ETL pipeline, a functions-as-a-service
runtime and an analytics engine, each an endless generator of realistic, varied entries.

Each generator yields (level, message, attributes) and keeps state across entries, so a
run reads like a real service: an ETL run goes extract -> transform -> load with row counts,
retries and the odd failure; a function invocation has a cold start, a duration, a timeout
now and then; an analytics job reports progress and query timings.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Generator, Iterator

from logs_gateway.publisher import Publisher

SimEntry = tuple[str, str, dict[str, object]]

CHANNELS = {
    "etl": "logs:etl:workspace123:workflow456",
    "faas": "logs:faas:workspace123:function789",
    "analytics": "logs:analytics:workspace123",
}
SOURCES = {"etl": "l5-etl", "faas": "faas-runtime", "analytics": "analytics-engine"}


def _ident(rng: random.Random, prefix: str) -> str:
    return f"{prefix}-{rng.getrandbits(32):08x}"


# ---- L5-ETL ---------------------------------------------------------------------------

ETL_SOURCES = (
    "postgres://orders",
    "s3://raw-events/clickstream",
    "kafka://payments",
    "sftp://partner",
)
ETL_TABLES = ("warehouse.orders_daily", "warehouse.sessions", "warehouse.payments_fact")


def etl(rng: random.Random) -> Iterator[SimEntry]:
    """Workflow runs, one after another."""
    while True:
        yield from _etl_run(rng, _ident(rng, "run"))


def _etl_run(rng: random.Random, run: str) -> Iterator[SimEntry]:
    trigger = rng.choice(("schedule", "schedule", "manual", "upstream"))
    yield "info", f"workflow run {run} started (trigger: {trigger})", {"run_id": run}
    rows = yield from _etl_extract(rng, run)
    if rows is None:
        return
    rows = yield from _etl_transform(rng, run, rows)
    total_ms = rng.randint(4_000, 90_000)
    if (yield from _etl_load(rng, run, rows)):
        yield (
            "info",
            f"workflow run {run} succeeded: {rows:,} rows in {total_ms / 1000:.1f} s",
            {
                "run_id": run,
                "rows": rows,
                "duration_ms": total_ms,
            },
        )


def _etl_extract(rng: random.Random, run: str) -> Generator[SimEntry, None, int | None]:
    source = rng.choice(ETL_SOURCES)
    attrs: dict[str, object] = {"run_id": run, "stage": "extract", "source": source}
    yield "debug", f"connecting to {source}", attrs
    for attempt in range(1, 4):
        if rng.random() > 0.15:
            break
        yield (
            "warn",
            f"extract from {source} timed out after 30 s; retry {attempt}/3",
            {
                **attrs,
                "attempt": attempt,
            },
        )
    else:
        yield "error", f"extract from {source} failed after 3 retries; run {run} aborted", attrs
        return None
    rows = rng.randint(5_000, 2_000_000)
    yield "info", f"extracted {rows:,} rows from {source}", {**attrs, "rows": rows}
    return rows


def _etl_transform(rng: random.Random, run: str, rows: int) -> Generator[SimEntry, None, int]:
    attrs: dict[str, object] = {"run_id": run, "stage": "transform"}
    rules = rng.randint(4, 20)
    yield "debug", f"applying {rules} transformation rules", {**attrs, "rules": rules}
    dropped = int(rows * rng.uniform(0, 0.03)) if rng.random() < 0.3 else 0
    if dropped:
        yield (
            "warn",
            f"dropped {dropped:,} rows with a null customer_id",
            {
                **attrs,
                "rows_dropped": dropped,
            },
        )
    yield "info", f"transformed {rows - dropped:,} rows", {**attrs, "rows": rows - dropped}
    return rows - dropped


def _etl_load(rng: random.Random, run: str, rows: int) -> Generator[SimEntry, None, bool]:
    table = rng.choice(ETL_TABLES)
    attrs: dict[str, object] = {"run_id": run, "stage": "load", "table": table}
    yield "info", f"loading {rows:,} rows into {table}", {**attrs, "rows": rows}
    if rng.random() < 0.08:
        yield "error", f"load into {table} failed: unique constraint violated on order_id", attrs
        yield "error", f"workflow run {run} failed at stage load", {"run_id": run}
        return False
    yield "info", f"loaded {rows:,} rows into {table}", {**attrs, "rows": rows}
    return True


# ---- FAAS -----------------------------------------------------------------------------

FAAS_HANDLERS = ("resize_image", "send_invoice", "score_lead", "sync_inventory")
TIMEOUT_MS = 3_000
MEMORY_MB = 256


def faas(rng: random.Random) -> Iterator[SimEntry]:
    """Function invocations; a cold start after idle periods, a timeout now and then."""
    while True:
        yield from _invocation(rng, _ident(rng, "req"), cold=rng.random() < 0.15)


def _invocation(rng: random.Random, request: str, cold: bool) -> Iterator[SimEntry]:
    handler = rng.choice(FAAS_HANDLERS)
    attrs: dict[str, object] = {"request_id": request, "handler": handler}
    if cold:
        init_ms = rng.randint(300, 2_500)
        yield (
            "info",
            f"cold start: runtime python3.12 initialised in {init_ms} ms",
            {
                **attrs,
                "init_ms": init_ms,
            },
        )
    yield "debug", f"START RequestId: {request}", attrs
    duration = min(rng.lognormvariate(5, 0.9), 10_000.0)
    if duration > TIMEOUT_MS:
        yield (
            "error",
            f"task timed out after {TIMEOUT_MS / 1000:.2f} seconds",
            {
                **attrs,
                "duration_ms": TIMEOUT_MS,
            },
        )
        return
    if rng.random() < 0.05:
        yield (
            "error",
            "unhandled exception: KeyError: 'customer_id'",
            {
                **attrs,
                "exception_type": "KeyError",
            },
        )
    else:
        yield "info", f"{handler} handled {rng.randint(1, 40)} items", attrs
    used = rng.randint(60, MEMORY_MB)
    level = "warn" if used > MEMORY_MB * 0.85 else "info"
    yield (
        level,
        f"END RequestId: {request} duration {duration:.2f} ms, memory {used}/{MEMORY_MB} MB",
        {
            **attrs,
            "duration_ms": round(duration, 2),
            "memory_mb": used,
        },
    )


# ---- analytics ------------------------------------------------------------------------

ANALYTICS_JOBS = ("daily_revenue_by_region", "funnel_conversion", "churn_cohorts", "ad_spend_roi")
SLOW_QUERY_MS = 5_000


def analytics(rng: random.Random) -> Iterator[SimEntry]:
    """Analytics jobs: progress through a scan, then per-query timings."""
    while True:
        yield from _job(rng, _ident(rng, "job"), rng.choice(ANALYTICS_JOBS))


def _job(rng: random.Random, job: str, name: str) -> Iterator[SimEntry]:
    attrs: dict[str, object] = {"job_id": job, "job": name}
    total = rng.randint(2_000_000, 80_000_000)
    yield "info", f"job {job} started: {name} over {total:,} rows", {**attrs, "rows": total}
    for percent in (25, 50, 75, 100):
        yield (
            "info",
            f"{name}: scanned {total * percent // 100:,} rows ({percent}%)",
            {
                **attrs,
                "progress": percent,
            },
        )
    queries = rng.randint(2, 5)
    for q in range(1, queries + 1):
        yield _query(rng, attrs, f"q{q}")
    yield "info", f"job {job} finished: {queries} queries", {**attrs, "queries": queries}


def _query(rng: random.Random, attrs: dict[str, object], query: str) -> SimEntry:
    took = int(rng.lognormvariate(6.5, 1.0))
    fields = {**attrs, "query": query, "query_ms": took}
    if rng.random() < 0.04:
        return "error", f"query {query} failed: out of memory on worker-{rng.randint(1, 8)}", fields
    if took > SLOW_QUERY_MS:
        return "warn", f"slow query {query}: {took:,} ms (threshold {SLOW_QUERY_MS:,} ms)", fields
    return "info", f"query {query} finished in {took:,} ms", fields


SIMULATORS: dict[str, Callable[[random.Random], Iterator[SimEntry]]] = {
    "etl": etl,
    "faas": faas,
    "analytics": analytics,
}


async def run(
    publisher: Publisher,
    kind: str,
    *,
    channel: str | None = None,
    interval: float = 1.0,
    count: int = 0,
    seed: int | None = None,
) -> int:
    """Publish simulated `kind` entries every `interval` seconds (with jitter), `count` of
    them (0: until cancelled); flush and return how many were published."""
    rng = random.Random(seed)  # noqa: S311 - simulated data, not security
    channel = channel or CHANNELS[kind]
    published = 0
    for level, message, attributes in SIMULATORS[kind](rng):
        await publisher.publish(
            channel, message, level=level, attributes=attributes, source=SOURCES[kind]
        )
        published += 1
        if published == count:
            break
        if interval > 0:
            await asyncio.sleep(interval * rng.uniform(0.5, 1.5))
    await publisher.flush()
    return published
