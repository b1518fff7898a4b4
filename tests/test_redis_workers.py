"""`--workers N`: N gateway processes sharing the ports, supervised, on the Redis broker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import cli
from gateway.app.workers import BOOT_SECONDS
from tests.conftest import Running, entry, gateway_process, wait_for
from tests.redis_server import RedisServer
from tests.sse_client import open_stream
from tests.test_limits import PublishStream, assert_refused, open_publishers, publish_streams

CHANNEL = "logs:etl:workers:wf1"


def children(pid: int) -> set[int]:
    """Live processes whose parent is `pid`, from /proc."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
            if int(parent) == pid and state != "Z":
                found.add(int(stat.parent.name))
    return found


def test_workers_need_the_redis_broker(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--workers", "2", "--broker", "memory"]) == 2
    assert "--workers=2 needs a shared broker" in capsys.readouterr().err


async def test_workers_share_the_ports_and_the_history(redis_server: RedisServer) -> None:
    with gateway_process("--workers", "2", "--broker", redis_server.url) as run:
        assert run.process is not None
        supervisor = run.process.pid
        await wait_for(lambda: len(children(supervisor)) == 2, 15)
        workers = children(supervisor)
        await _every_stream_gets_every_entry(run)
        # A worker that dies is replaced (once it was up longer than a startup).
        await asyncio.sleep(BOOT_SECONDS)
        dead = min(workers)
        os.kill(dead, signal.SIGKILL)
        await wait_for(lambda: len(children(supervisor) - {dead}) == 2, 15)
        workers = children(supervisor)
        # Workers of a supervisor killed outright drain and stop by themselves.
        os.kill(supervisor, signal.SIGKILL)
        await wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), 15)


async def _every_stream_gets_every_entry(run: Running) -> None:
    """Streams land on either worker (the kernel spreads connections); an entry published
    on either reaches all of them."""
    token = run.token("reader", subscribe=["logs:>"])
    publisher = run.token("svc", publish=["logs:>"])
    async with contextlib.AsyncExitStack() as stack:
        streams = [
            await stack.enter_async_context(open_stream(run.http, CHANNEL, token)) for _ in range(8)
        ]
        for stream in streams:
            await stream.next()
        batches = [[entry(CHANNEL, f"m{i}")] for i in range(4)]
        await run.publish(publisher, batches, producer="workers")
        for stream in streams:
            assert [e.data["message"] for e in await stream.take(4)] == ["m0", "m1", "m2", "m3"]


async def scrape(run: Running) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(run.http + "/metrics")).text


def per_worker(metrics: str, sample: str) -> dict[str, float]:
    """{worker: value} of `sample` (its name and labels but the worker's) in a scrape."""
    found = {}
    for line in metrics.splitlines():
        if line.startswith(sample[:-1] + ",worker="):
            worker = line.split('worker="')[1].split('"')[0]
            found[worker] = float(line.split()[-1])
    return found


@pytest.fixture(params=["redis", "nats"])
def shared_broker(request: pytest.FixtureRequest) -> str:
    """`--broker` of a shared broker: Redis, or NATS (stream counts in a JetStream KV
    bucket, gateway.core.stream_counts_nats), on the session's private server."""
    server = request.getfixturevalue(f"{request.param}_server")
    return str(server.url)


async def test_per_token_limits_and_metrics_span_the_workers(shared_broker: str) -> None:
    """Each worker sees the streams of the others: past a token's limit every new stream is
    refused, whichever worker the kernel hands it to; one scrape reports both workers."""
    limits = ("--max-connections-per-token", "4", "--max-publish-streams-per-token", "3")
    with gateway_process("--workers", "2", "--broker", shared_broker, *limits) as run:
        deadline = time.monotonic() + 15
        # Until the second worker serves its metrics too.
        while "logs_gateway_workers_missing 0.0" not in (metrics := await scrape(run)):
            assert time.monotonic() < deadline, metrics
        reader = run.token("spanning-reader", subscribe=["logs:>"])
        async with contextlib.AsyncExitStack() as stack:
            streams = [
                await stack.enter_async_context(open_stream(run.http, CHANNEL, reader))
                for _ in range(4)
            ]
            for stream in streams:
                assert (await stream.next()).event == "ready"
            async with httpx.AsyncClient() as client:
                for _ in range(8):  # new connections, spread over both workers
                    refused = await client.get(
                        run.http + "/api/logs/stream",
                        params={"channels": CHANNEL},
                        headers=run.headers(reader),
                    )
                    assert refused.status_code == 429
                    message = refused.json()["error"]["message"]
                    assert "already has 4 open streams (--max-connections-per-token)" in message
            metrics = await scrape(run)
            open_ = per_worker(metrics, 'logs_gateway_streams_open{kind="subscribe"}')
            assert set(open_) == {"1", "2"} and sum(open_.values()) == 4
            refusals = per_worker(
                metrics, 'logs_gateway_streams_refused_total{kind="subscribe",limit="per_token"}'
            )
            assert sum(refusals.values()) == 8
            # The merged scrape is valid exposition: every family once, samples per worker.
            families = {f.name: f for f in text_string_to_metric_families(metrics)}
            workers = {
                s.labels["worker"] for s in families["process_resident_memory_bytes"].samples
            }
            assert workers == {"1", "2"}
            async with httpx.AsyncClient() as client:
                accept = {"Accept": "application/openmetrics-text; version=1.0.0"}
                text = (await client.get(run.http + "/metrics", headers=accept)).text
            counters = {f.name: f for f in openmetrics_families(text)}
            assert counters["logs_gateway_streams_refused"].type == "counter"
        publisher = run.token("spanning-svc", publish=["logs:>"])
        async with publish_streams(run) as publishers:
            await open_publishers(run, publisher, 3, publishers)
            for _ in range(6):  # each on its own connection, so on either worker
                publishers.append(extra := PublishStream(run, publisher))
                assert_refused(
                    await extra.refusal(),
                    "already has 3 open publish streams",
                    "--max-publish-streams-per-token",
                )
