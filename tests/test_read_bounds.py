"""Reads of history at the scale of the attacks of issue 23, asserted on what a bystander
sees: its own channel's latency (in a process of its own), another client's Redis PING,
and the gateway's RSS. The bounds are generous (a loaded machine cannot cross them; the
gateway before paged reads crossed each by far: a bystander waited seconds, one resume
held Redis 1.3 s, a resume that never read held ~100 MB); bench/read_bounds.py measures
the same against the issue's targets."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from bench import read_bounds
from bench.read_bounds import Gateway
from bench.sampling import Sampler
from bench.servers import Server, cpu_seconds
from tests.conftest import Running, gateway_process
from tests.redis_server import running_redis

CHANNELS = 100_000
VIEWERS = 200
RESUMES = 20


def bench_gateway(run: Running) -> Gateway:
    assert run.process is not None
    url = urlsplit(run.http)
    assert url.port is not None
    return Gateway(Server("gateway", url.port, pids=[run.process.pid]), run.signer)


async def test_a_bystander_keeps_its_pace_while_200_viewers_tail_everything_and_resumes_run() -> (
    None
):
    """100,000 one-entry channels (memory broker); 200 viewers open `logs:>` with
    tail=1000 while 20 resumes of `logs:etl:>` from before the channels read. Before paged
    reads the viewers took 84 s and the bystander's p50 was 4.2 s."""
    with gateway_process("--max-connections-per-token", "1000", "--publish-rate", "0") as run:
        gw = bench_gateway(run)
        names = [f"logs:etl:ws{i % 100}:run-{i}" for i in range(CHANNELS)]
        await read_bounds.fill(gw, names, 1, 100)
        sizes = read_bounds.Sizes(viewers=VIEWERS, resumes=RESUMES, resume_seconds=10.0)
        with gw.bystander() as bystander:
            await asyncio.sleep(2)
            bystander.window()
            await asyncio.sleep(3)
            idle = bystander.window()
            began = time.perf_counter()
            (elapsed, served, _), (events, _) = await asyncio.gather(
                read_bounds.viewers(gw, sizes), read_bounds.resumes(gw, sizes, "zz-0")
            )
            seen = bystander.window()
            took = time.perf_counter() - began
        print(f"viewers served in {elapsed:.1f} s; resumes read {events:,}")
        print(f"bystander idle: {idle.summary()}; meanwhile: {seen.summary()}")
        assert served == VIEWERS
        assert events > 0
        assert seen.unavailable == 0
        # It heard its entries back within 3 s (before: a median of 4.2 s). One entry in a
        # hundred may wait longer: on a machine busy with other work (load 5-8) the gateway
        # once waited 15.7 s for a core, which says nothing of its reads.
        ordered = sorted(seen.samples)
        assert ordered and ordered[int(len(ordered) * 0.99) - 1] < 3000, (idle, seen, took)


async def test_a_resume_over_100_mb_of_redis_history_leaves_redis_to_everyone(
    tmp_path: Path,
) -> None:
    """50 channels x 1,000 entries x 2 KB. Before, one resume made another client's PING
    wait 1.3 s, four ended in 503, and one that never read held ~110 MB."""
    with (
        running_redis(tmp_path) as redis_server,
        gateway_process(
            "--broker", redis_server.url, "--heartbeat-seconds", "5", "--publish-rate", "0"
        ) as run,
    ):
        gw = bench_gateway(run)
        names = [f"logs:big:ws0:ch{i}" for i in range(50)]
        await read_bounds.fill(gw, names, 1000, 2000)
        client = aioredis.Redis.from_url(redis_server.url, socket_timeout=60)
        await read_bounds.record_commands(client)
        assert redis_server.process is not None
        with gw.bystander() as bystander, Sampler.pinger(redis_server.url) as pinger:
            await asyncio.sleep(1)
            bystander.window(), pinger.window()
            cpu = cpu_seconds(redis_server.process.pid)
            events, taken = await read_bounds.resume(gw, "channels=logs:big:>", 50_000)
            cpu = cpu_seconds(redis_server.process.pid) - cpu
            seen, ping = bystander.window(), pinger.window()
        print(f"resume read {taken / 1e6:.0f} MB; PING {ping.summary()}; {seen.summary()}")
        pages = (await read_bounds.script_times(client))["PAGE"]
        await client.aclose()
        print(f"PAGE calls: {len(pages)}, Redis CPU {cpu:.2f} s; in Redis's time, median")
        print(f"{sorted(pages)[len(pages) // 2]} us, longest {sorted(pages)[-5:]} us")
        assert events == 50_000 and taken > 100e6
        # The resume is many calls, each a page's work in Redis (all of Redis's CPU over
        # the resume, shared by them, is at most 20 ms a call; before, the resume was one
        # script of about 1.3 s), so the others' commands wait about a page at a time.
        assert len(pages) > 100 and cpu / len(pages) < 0.02, (cpu, len(pages))
        assert max(ping.samples) < 2000, ping.summary()
        assert seen.unavailable == 0
        # Resumes that never read hold a send buffer and a page each, not the history.
        per_stream = await read_bounds.idle_resumes(gw, 4, "channels=logs:big:>")
        print(f"RSS per resume that never reads: {per_stream:.0f} KiB")
        assert per_stream < 4 * 1024, per_stream
