"""Reads of history that must not hold the loop or Redis (issue 23's rows for reads).

A bystander publishes 100 entries/s to its own channel over HTTP and follows it over SSE;
its latency (publish sent -> entry received) is measured while:

- 200 viewers open `logs:>` with `tail=1000` over 100,000 one-entry channels (memory
  broker), each reading until it has its 1,000 entries;
- 20 resumes of `logs:etl:>` from before those channels read what they can;
- (Redis broker) one resume over 100 MB of history (50 channels x 1,000 x 2 KB) is read
  while another client PINGs Redis; Redis's own time per PAGE call is read from
  `INFO commandstats`, and every bystander POST answered 503 is counted;
- resumes that never read are opened one after another on either broker, and the
  gateway's RSS growth per stream is compared with the send buffer plus one page;
- with `--paced`, instead of all the above, issue 23's own form: one resume that never
  reads every 5 s for 5 minutes (60), each left open by its client, on the broker `--only`
  names; the gateway drops each after its write timeout, so its RSS must stay within
  base + streams open at once x (send buffer + one page), and come back near base after
  all are closed.

    python -m bench.read_bounds [--quick] [--tree PATH] [--only memory|redis] [--paced]

`--tree` runs the gateway of another checkout (an older commit) for a before/after table.
Every load is bounded and on loopback; the gateway is pinned to its own core.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import secrets
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from bench import servers
from bench.sampling import Sampler
from gateway.core import broker_redis_lua as lua
from gateway.core import redis_page_lua
from gateway.core.broker import PAGE_BYTES
from gateway.core.tokens import Signer

ISSUER = AUDIENCE = "logs-gateway"
SEND_BUFFER = 1024 * 1024  # the gateway's --send-buffer-bytes default


@dataclass(frozen=True)
class Sizes:
    channels: int = 100_000
    viewers: int = 200
    tail: int = 1000
    resumes: int = 20
    resume_seconds: float = 10.0
    redis_channels: int = 50
    redis_entries: int = 1000
    redis_entry_bytes: int = 2000
    idle_resumes: int = 10


FULL = Sizes()
QUICK = Sizes(channels=20_000, viewers=40, resumes=5, resume_seconds=4.0, redis_channels=10)


class Gateway:
    """A gateway under test: its address, tokens that read and write `logs:>`."""

    def __init__(self, server: servers.Server, signer: Signer) -> None:
        self.http = f"http://{servers.HOST}:{server.http_port}"
        self.server = server
        self.reader = signer.mint("bench", subscribe=["logs:>"])
        self.writer = signer.mint("bench", publish=["logs:>"])

    async def publish(self, client: httpx.AsyncClient, entries: list[dict[str, Any]]) -> int:
        answer = await client.post(
            self.http + "/api/logs/publish",
            json={"entries": entries},
            headers={"Authorization": f"Bearer {self.writer}"},
        )
        return answer.status_code

    async def open(self, query: str, last_event_id: str | None = None) -> asyncio.StreamReader:
        """An SSE stream (raw socket: the reader decides how fast it reads)."""
        reader, writer = await asyncio.open_connection(servers.HOST, self.server.http_port)
        head = f"GET /api/logs/stream?{query} HTTP/1.1\r\nHost: x\r\n"
        head += f"Authorization: Bearer {self.reader}\r\n"
        if last_event_id:
            head += f"Last-Event-ID: {last_event_id}\r\n"
        writer.write((head + "\r\n").encode())
        reader._bench_writer = writer  # type: ignore[attr-defined]  # closed with it
        return reader

    def bystander(self) -> Sampler:
        """The bystander of issue 23, on its own channel (bench.sampling)."""
        return Sampler.bystander(self.http, self.server.http_port, self.reader, self.writer)


def close(stream: asyncio.StreamReader) -> None:
    stream._bench_writer.close()  # type: ignore[attr-defined]


async def fill(gw: Gateway, names: list[str], per_channel: int, size: int) -> None:
    """`per_channel` entries of about `size` bytes on each channel, in POSTs of at most
    1,000 entries and about 256 KB (each one short work for the broker)."""
    entries = [
        {"channel": n, "level": "info", "message": "x" * size}
        for n in names
        for _ in range(per_channel)
    ]
    step = max(1, min(1000, 256_000 // size))
    async with httpx.AsyncClient(timeout=60) as client:
        for start in range(0, len(entries), step):
            status = await gw.publish(client, entries[start : start + step])
            assert status == 200, status


async def read_events(stream: asyncio.StreamReader, count: int, until: float) -> tuple[int, int]:
    """Read until `count` `log` events (or the deadline); (events, bytes) read."""
    events = taken = 0
    carry = b""
    while events < count and time.perf_counter() < until:
        try:
            chunk = await asyncio.wait_for(stream.read(1 << 20), until - time.perf_counter())
        except TimeoutError:
            break
        if not chunk:
            break
        taken += len(chunk)
        data = carry + chunk
        events += data.count(b"event: log")
        carry = data[-16:]
        events -= carry.count(b"event: log")
    return events + carry.count(b"event: log"), taken


async def viewers(gw: Gateway, sizes: Sizes) -> tuple[float, int, int]:
    """200 viewers of `logs:>` with tail=1000: seconds until all had their tail, how many
    did, and the bytes they read."""
    began = time.perf_counter()
    streams = [await gw.open(f"channels=logs:>&tail={sizes.tail}") for _ in range(sizes.viewers)]
    results = await asyncio.gather(*(read_events(s, sizes.tail, began + 120) for s in streams))
    elapsed = time.perf_counter() - began
    for stream in streams:
        close(stream)
    served = sum(events >= sizes.tail for events, _ in results)
    return elapsed, served, sum(taken for _, taken in results)


async def resumes(gw: Gateway, sizes: Sizes, cursor: str) -> tuple[int, int]:
    """Wildcard resumes from `cursor`, each reading for resume_seconds: (events, bytes)."""
    until = time.perf_counter() + sizes.resume_seconds
    streams = [await gw.open("channels=logs:etl:>", cursor) for _ in range(sizes.resumes)]
    results = await asyncio.gather(*(read_events(s, 10**9, until) for s in streams))
    for stream in streams:
        close(stream)
    return sum(e for e, _ in results), sum(t for _, t in results)


async def resume(gw: Gateway, query: str, count: int) -> tuple[int, int]:
    """A resume from before everything, read until `count` events: (events, bytes)."""
    stream = await gw.open(query, "zz-0")
    try:
        return await read_events(stream, count, time.perf_counter() + 120)
    finally:
        close(stream)


async def idle_resumes(gw: Gateway, count: int, query: str) -> float:
    """RSS growth (KiB) per resume that never reads, all open at once, at its peak before
    the gateway drops them."""
    before = gw.server.rss_kb()
    streams = [await gw.open(query, "zz-0") for _ in range(count)]
    peak = before
    for _ in range(40):  # 4 s: every stream has read what its socket takes, then waits
        peak = max(peak, gw.server.rss_kb())
        await asyncio.sleep(0.1)
    for stream in streams:
        close(stream)
    return (peak - before) / count


async def loop_lag(gw: Gateway) -> dict[float, float]:
    """The gateway's own loop-lag histogram (its /metrics): timers late by at most each
    bound, cumulative, for `lag_summary` to difference over a phase."""
    async with httpx.AsyncClient(timeout=30) as client:
        text = (await client.get(gw.http + "/metrics")).text
    prefix = 'logs_gateway_event_loop_lag_seconds_bucket{le="'
    return {
        float(line[len(prefix) :].split('"', 1)[0]): float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


def lag_summary(before: dict[float, float], after: dict[float, float]) -> str:
    """A phase's loop lag as the gateway measured it (a timer every 100 ms): the bound its
    p99 falls under, and how many timers were late past 10 and 25 ms."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = counts[float("inf")]
    p99 = next(b for b, n in counts.items() if n >= 0.99 * total)
    late = {ms: total - counts[ms / 1000] for ms in (10, 25)}
    return (
        f"p99 <= {p99 * 1000:g} ms ({total:.0f} timers; {late[10]:.0f} late > 10 ms,"
        f" {late[25]:.0f} > 25 ms)"
    )


async def open_streams(client: httpx.AsyncClient, gw: Gateway) -> int:
    """SSE connections the gateway holds now (its /metrics)."""
    text = (await client.get(gw.http + "/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith("logs_gateway_sse_connections "))
    return int(float(line.split()[1]))


async def paced_resumes(
    gw: Gateway, query: str, count: int = 60, every: float = 5.0
) -> list[tuple[str, str, str]]:
    """Issue 23's form: a resume that never reads every `every` s, each kept open by its
    client; RSS sampled every 0.2 s against the streams the gateway holds meanwhile."""
    base = gw.server.rss_kb()
    streams, most, peak = [], 0, base
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(count):
            streams.append(await gw.open(query, "zz-0"))
            until = time.perf_counter() + every
            while time.perf_counter() < until:
                rss, held = gw.server.rss_kb(), await open_streams(client, gw)
                peak, most = max(peak, rss), max(most, held)
                await asyncio.sleep(0.2)
        for stream in streams:
            close(stream)
        for _ in range(300):  # the gateway lets go of each as it sees its socket close
            if not await open_streams(client, gw):
                break
            await asyncio.sleep(0.1)
    await asyncio.sleep(2)
    after = gw.server.rss_kb() - base
    bound = (SEND_BUFFER + PAGE_BYTES) // 1024
    return [
        (
            f"RSS, {count} resumes that never read, one every {every:.0f} s",
            f"<= base + open streams x {bound} KiB",
            f"base {base / 1024:.0f} MiB; peak +{(peak - base) / 1024:.1f} MiB with at most"
            f" {most} open at once (bound {most * bound / 1024:.1f} MiB)",
        ),
        ("RSS after all closed", "near base", f"{after / 1024:+.1f} MiB"),
    ]


async def paced(gw: Gateway, redis_url: str | None) -> list[tuple[str, str, str]]:
    """The history the resumes read (as in the other rows), then the paced resumes."""
    if redis_url is None:
        names = [f"logs:etl:ws{i % 100}:run-{i}" for i in range(FULL.channels)]
        await fill(gw, names, 1, 100)
        return await paced_resumes(gw, "channels=logs:etl:>")
    names = [f"logs:big:ws0:ch{i}" for i in range(FULL.redis_channels)]
    await fill(gw, names, FULL.redis_entries, FULL.redis_entry_bytes)
    return await paced_resumes(gw, "channels=logs:big:>")


async def memory_rows(gw: Gateway, sizes: Sizes) -> list[tuple[str, str, str]]:
    names = [f"logs:etl:ws{i % 100}:run-{i}" for i in range(sizes.channels)]
    await fill(gw, names, 1, 100)
    rows = []
    with gw.bystander() as by:
        window = by.window
        await asyncio.sleep(2)
        window()
        await asyncio.sleep(3)
        rows.append(("bystander, idle", "", window().summary()))
        lag = await loop_lag(gw)
        elapsed, served, taken = await viewers(gw, sizes)
        lat = window()
        rows.append(
            (
                f"the gateway's loop lag, {sizes.viewers} viewers",
                "",
                lag_summary(lag, await loop_lag(gw)),
            )
        )
        rows.append(
            (
                f"bystander, {sizes.viewers} viewers tail={sizes.tail} of logs:>",
                "p99 <= 20 ms",
                lat.summary(),
            )
        )
        rows.append(
            (
                f"{sizes.viewers} viewers served",
                "all, within 2x the time to send their bytes",
                f"{served}/{sizes.viewers} in {elapsed:.2f} s ({taken / 1e6:.1f} MB)",
            )
        )
        lag = await loop_lag(gw)
        events, taken = await resumes(gw, sizes, "zz-0")
        lat = window()
        rows.append(
            (
                f"the gateway's loop lag, {sizes.resumes} resumes",
                "",
                lag_summary(lag, await loop_lag(gw)),
            )
        )
        rows.append(
            (
                f"bystander, {sizes.resumes} resumes of logs:etl:> from before them",
                "p99 <= 20 ms",
                f"{lat.summary()}; they read {events:,} events ({taken / 1e6:.0f} MB)"
                f" in {sizes.resume_seconds:.0f} s",
            )
        )
    per = await idle_resumes(gw, sizes.idle_resumes, "channels=logs:etl:>")
    rows.append(
        (
            "RSS per resume that never reads (memory)",
            f"<= {(SEND_BUFFER + PAGE_BYTES) // 1024} KiB",
            f"{per:.0f} KiB",
        )
    )
    return rows


async def redis_rows(gw: Gateway, redis_url: str, sizes: Sizes) -> list[tuple[str, str, str]]:
    names = [f"logs:big:ws0:ch{i}" for i in range(sizes.redis_channels)]
    await fill(gw, names, sizes.redis_entries, sizes.redis_entry_bytes)
    client = aioredis.Redis.from_url(redis_url, socket_timeout=120)
    await record_commands(client)
    rows = []
    with gw.bystander() as by, Sampler.pinger(redis_url) as pinger:
        await asyncio.sleep(2)
        by.window(), pinger.window()
        expected = sizes.redis_channels * sizes.redis_entries
        began = time.perf_counter()
        events, taken = await resume(gw, "channels=logs:big:>", expected)
        took = time.perf_counter() - began
        ping, lat = pinger.window(), by.window()
        rows.append(
            (
                f"another client's PING, one resume over {taken / 1e6:.0f} MB of Redis history",
                "p99 <= 20 ms",
                f"{ping.summary()}; the resume read {events:,} events in {took:.1f} s",
            )
        )
        rows.append(
            ("bystander POSTs answered 503 meanwhile", "0", f"{lat.unavailable} ({lat.summary()})")
        )
        await asyncio.gather(*(resume(gw, "channels=logs:big:>", expected) for _ in range(4)))
        ping, lat = pinger.window(), by.window()
        rows.append(
            ("another client's PING, four such resumes at once", "p99 <= 20 ms", ping.summary())
        )
        rows.append(("bystander POSTs answered 503 meanwhile", "0", str(lat.unavailable)))
    rows += await script_rows(client)
    await client.aclose()
    per = await idle_resumes(gw, sizes.idle_resumes, "channels=logs:big:>")
    rows.append(
        (
            "RSS per resume that never reads (Redis)",
            f"<= {(SEND_BUFFER + PAGE_BYTES) // 1024} KiB",
            f"{per:.0f} KiB",
        )
    )
    return rows


async def record_commands(client: aioredis.Redis) -> None:
    """Every command into Redis's slow log from now on, with its time in Redis."""
    await client.config_set("slowlog-log-slower-than", 0)
    await client.config_set("slowlog-max-len", 200_000)
    await client.slowlog_reset()


async def script_times(client: aioredis.Redis) -> dict[str, list[int]]:
    """Redis's own time (us) of each call of the read scripts since `record_commands`."""
    names = {_sha(redis_page_lua.PAGE): "PAGE", _sha(lua.READ): "READ"}
    times: dict[str, list[int]] = {name: [] for name in names.values()}
    for entry in await client.slowlog_get(200_000):
        command = entry["command"].split()
        name = names.get(command[1].decode()) if len(command) > 1 else None
        if command[0].upper() == b"EVALSHA" and name is not None:
            times[name].append(entry["duration"])
    return times


async def script_rows(client: aioredis.Redis) -> list[tuple[str, str, str]]:
    rows = []
    for name, calls in (await script_times(client)).items():
        calls = sorted(calls or [0])
        p99 = calls[min(len(calls) - 1, int(len(calls) * 0.99))]
        rows.append(
            (
                f"Redis's time per {name} call",
                "one page of work",
                f"p50 {statistics.median(calls):.0f} us, p99 {p99} us, max {calls[-1]} us"
                f" ({len(calls):,} calls)",
            )
        )
    return rows


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()  # noqa: S324 - Redis names scripts so


def show(rows: list[tuple[str, str, str]]) -> None:
    for what, target, measured in rows:
        print(f"| {what} | {target} | {measured} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tree", type=Path, help="run the gateway of this checkout")
    parser.add_argument("--only", choices=("memory", "redis"))
    parser.add_argument("--paced", action="store_true", help="issue 23's paced form only")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    secret = secrets.token_hex(16)
    signer = Signer(secret=secret.encode(), issuer=ISSUER, audience=AUDIENCE)
    extra = ("--heartbeat-seconds", "5")
    print("| what | target | measured |\n| --- | --- | --- |", flush=True)
    if args.only != "redis":
        with servers.gateway(secret, extra=extra, tree=args.tree) as server:
            gw = Gateway(server, signer)
            show(asyncio.run(paced(gw, None) if args.paced else memory_rows(gw, sizes)))
    if args.only != "memory":
        # Redis on a core of its own, as on a host of its own: the gateway's work must not
        # pass for Redis's in another client's PING.
        with servers.redis(servers.LOAD_CORES[0]) as redis_server:
            url = f"redis://{servers.HOST}:{redis_server.http_port}/0"
            with servers.gateway(secret, url, extra, args.tree) as server:
                gw = Gateway(server, signer)
                show(asyncio.run(paced(gw, url) if args.paced else redis_rows(gw, url, sizes)))


if __name__ == "__main__":
    main()
