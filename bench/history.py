"""`python -m bench history [--redis URL]`: history pages and channel discovery (issue 25),
on a broker in this process (the memory broker, or Redis with --redis).

- A page of 1,000 entries back from a cursor in the middle of 100,000 matching entries,
  held on 1,000 channels (100 each) and on 100,000 channels (one each): the page's cost
  must follow what it returns, so the ratio of the two is the figure (target <= 1.5x).
  The same with the 100,000 matching entries on 1,000 channels among 99,000 others.
- Loop lag while 50 viewers page back through all of it at once (each page a read of
  1,000 in the process's read turns): the p99 of a 1 ms timer's lateness (target <= 10 ms).
- Discovery: a page of 100 channels, newest activity first, over the 1,000 and 100,000.

Each figure is the median of REPEAT reads; each scenario runs in a fresh process, and
ratios are of figures taken in the same round (`--rounds`, 5: their median and spread).
On a shared machine wall times mostly measure the machine's load, so each figure also
comes in CPU time (`_cpu_ms`: the thread's own), and the loop lag with the CPU time of the
longest loop callbacks (`turn_cpu_*`: what one turn of the reads costs the loop).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from gateway.app.brokers import memory_broker, redis_broker
from gateway.app.config import Config
from gateway.core import history
from gateway.core.broker import Broker
from gateway.core.catch_up import READ_TURNS
from gateway.core.channels import parse_pattern
from gateway.core.events import Entry

ENTRIES = 100_000
PAGE = 1_000
VIEWERS = 50
REPEAT = 9
BATCH = 500
MATCH = parse_pattern("logs:etl:ws1:>")


def build(redis: str | None, prefix: str) -> Broker:
    if redis:
        return redis_broker(Config(broker=redis, history_entries=1_000), prefix=prefix)
    return memory_broker(
        Config(history_entries=1_000, history_seconds=3_600, max_history_bytes=2**31)
    )


async def fill(broker: Broker, channels: int, others: int) -> None:
    """ENTRIES matching entries spread round-robin over `channels`, and one entry on each
    of `others` channels that do not match, interleaved."""
    names = [f"logs:etl:ws1:run-{i}" for i in range(channels)]
    other = [f"logs:faas:ws{i % 100}:fn-{i}" for i in range(others)]
    batch: list[Entry] = []
    for i in range(max(ENTRIES, others)):
        if i < ENTRIES:
            batch.append(Entry(names[i % channels], time.time_ns(), 9, f"m{i}", "bench", {}))
        if i < others:
            batch.append(Entry(other[i], time.time_ns(), 9, f"o{i}", "bench", {}))
        if len(batch) >= BATCH:
            await broker.append(batch, None)
            batch = []
    if batch:
        await broker.append(batch, None)


async def median(read: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """The median wall and CPU seconds of REPEAT reads."""
    took, cpu = [], []
    for _ in range(REPEAT):
        started, used = time.perf_counter(), time.thread_time()
        await read()
        took.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - used)
    return statistics.median(took), statistics.median(cpu)


@contextlib.contextmanager
def callback_cpu() -> Iterator[list[float]]:
    """The CPU seconds of every loop callback run meanwhile (asyncio's Handle._run timed)."""
    spent: list[float] = []
    run = asyncio.events.Handle._run

    def timed(handle: asyncio.events.Handle) -> None:
        used = time.thread_time()
        run(handle)
        spent.append(time.thread_time() - used)

    asyncio.events.Handle._run = timed  # type: ignore[method-assign,assignment]
    try:
        yield spent
    finally:
        asyncio.events.Handle._run = run  # type: ignore[method-assign]


async def page_back(broker: Broker, turns: asyncio.Semaphore) -> tuple[float, float]:
    middle = await broker.head() // 2

    async def read() -> None:
        window = await history.before(broker, [MATCH], middle, PAGE, 0, turns)
        assert len(window.events) == PAGE

    return await median(read)


async def discovery(broker: Broker) -> float:
    return (await median(lambda: broker.channels([MATCH], None, 100)))[0]


async def viewers_lag(broker: Broker, turns: asyncio.Semaphore) -> dict[str, float]:
    """Loop lag while VIEWERS page back from the newest entry to the start at once."""
    late: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            late.append(time.perf_counter() - started - 0.001)

    async def viewer() -> int:
        seen, before = 0, None
        while True:
            window = await history.before(broker, [MATCH], before, PAGE, 0, turns)
            seen += len(window.events)
            if window.older is None:
                return seen
            before = window.older

    pauses: list[float] = []
    began = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - began[0])

    gc.callbacks.append(timed)
    prober = asyncio.create_task(probe())
    await asyncio.sleep(2)  # the probe alone: what the machine adds (its load, the timer)
    idle = sorted(late)
    late.clear()
    started = time.perf_counter()
    with callback_cpu() as spent:
        seen = await asyncio.gather(*(viewer() for _ in range(VIEWERS)))
    took = time.perf_counter() - started
    spent.sort()
    done.set()
    await prober
    gc.callbacks.remove(timed)
    assert all(n == ENTRIES for n in seen), seen
    late.sort()
    return {
        "idle_lag_p99_ms": idle[int(len(idle) * 0.99)] * 1000,
        "lag_p99_ms": late[int(len(late) * 0.99)] * 1000,
        "lag_max_ms": late[-1] * 1000,
        "gc_max_ms": max(pauses, default=0) * 1000,
        "turn_cpu_p99_ms": spent[int(len(spent) * 0.99)] * 1000,
        "turn_cpu_max_ms": spent[-1] * 1000,
        "seconds": took,
        "pages_per_second": VIEWERS * ENTRIES / PAGE / took,
    }


async def scenario(redis: str | None, channels: int, others: int, lag: bool) -> dict[str, float]:
    broker = build(redis, f"bench-history-{channels}-{others}-{time.time_ns()}")
    turns = asyncio.Semaphore(READ_TURNS)
    try:
        await fill(broker, channels, others)
        wall, cpu = await page_back(broker, turns)
        got = {"page_back_ms": wall * 1000, "page_back_cpu_ms": cpu * 1000}
        got["discovery_ms"] = await discovery(broker) * 1000
        if lag:
            got |= await viewers_lag(broker, turns)
        return got
    finally:
        await broker.close()


SCENARIOS = (  # label, matching channels, other channels
    ("1,000 channels", 1_000, 0),
    ("100,000 channels", 100_000, 0),
    ("1,000 of 100,000 channels", 1_000, 99_000),
)


def _one(redis: str | None, channels: int, others: int, lag: bool) -> dict[str, float]:
    return asyncio.run(scenario(redis, channels, others, lag))


def run(redis: str | None, rounds: int) -> dict[str, Any]:
    """`rounds` rounds of the three scenarios, each in a fresh process (a page's time moved
    2-3x between runs of one process that had held other scenarios before), the ratios
    taken within each round; the loop lag in the first round only."""
    results: list[dict[str, dict[str, float]]] = []
    spawn = multiprocessing.get_context("spawn")
    for n in range(rounds):
        got = {}
        for label, channels, others in SCENARIOS:
            lag = n == 0 and others == 0 and channels == 1_000
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                got[label] = pool.submit(_one, redis, channels, others, lag).result()
            print(f"bench history: round {n + 1}, {label}: {got[label]}", file=sys.stderr)
        base = got["1,000 channels"]
        for label, _, _ in SCENARIOS[1:]:
            got[label]["page_back_ratio"] = got[label]["page_back_ms"] / base["page_back_ms"]
            got[label]["page_back_cpu_ratio"] = (
                got[label]["page_back_cpu_ms"] / base["page_back_cpu_ms"]
            )
        results.append(got)
    ratios = {
        label: sorted(r[label]["page_back_cpu_ratio"] for r in results)
        for label, _, _ in SCENARIOS[1:]
    }
    summary = {
        label: {"median": statistics.median(v), "min": v[0], "max": v[-1]}
        for label, v in ratios.items()
    }
    return {"rounds": results, "page_back_cpu_ratio": summary}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench history")
    parser.add_argument("--redis", metavar="URL", help="a Redis broker at URL (loopback)")
    parser.add_argument("--lag-only", action="store_true", help="only the 50 viewers' loop lag")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the page figures")
    args = parser.parse_args(argv)
    if args.lag_only:
        print(json.dumps(asyncio.run(scenario(args.redis, 1_000, 0, True)), indent=2))
        return 0
    print(json.dumps(run(args.redis, args.rounds), indent=2))
    return 0
