"""The load generator's C publisher of single-entry POSTs (bench/post_load.c) as a worker:
the orchestrator's steps in through its stdin, the subscribers' progress relayed to it (its
closed loop), what it sent and what was answered out.

The post scenarios of issue 29 push a server at tens of thousands of POSTs a second; the
Python publisher (bench/publish_load.py, one pipelined connection) spent its whole core
near nchan's rate, so it, not the server, set the figure.
"""

from __future__ import annotations

import asyncio
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.publish_load import Acks
from bench.workers import PROGRESS_EVERY, Plan, Result, Target, cpu_time, receive, run_pinned


def publish(conn: Connection, binary: Path, target: Target, plan: Plan, progress: Any) -> None:
    """Worker: `binary` (bench/post_load.c) floods `plan.channels` round-robin with POSTs."""
    run_pinned(lambda: _publish(conn, binary, target, plan, progress))


def command(binary: Path, target: Target, plan: Plan) -> list[str]:
    """post_load's command line for `plan` against `target`."""
    bounds = (plan.connections, plan.in_flight, plan.window, plan.seconds)
    token = target.pub_token or "-"
    return [str(binary), target.host, str(target.http_port), *map(str, bounds), token]


def channel_lines(target: Target, channels: tuple[str, ...]) -> bytes:
    """A line per channel (its POST path, a tab, its body template), then an empty line."""
    return b"".join(_channel_line(target, c) for c in channels) + b"\n"


def _channel_line(target: Target, channel: str) -> bytes:
    return b"%s\t%s\n" % (target.publish_path(channel).encode(), target.post_template(channel))


async def _publish(
    conn: Connection, binary: Path, target: Target, plan: Plan, progress: Any
) -> None:
    child = await asyncio.create_subprocess_exec(
        *command(binary, target, plan),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    child.stdin.write(channel_lines(target, plan.channels))
    await _line(child.stdout, "ready")
    conn.send(("ready", 0))
    await receive(conn)  # go
    cpu = cpu_time()
    child.stdin.write(b"go\n")
    relay = asyncio.ensure_future(_relay(child.stdin, progress))
    figures = await _line(child.stdout, "result")
    relay.cancel()
    await child.wait()
    conn.send(("result", _result(figures, plan, cpu_time() - cpu)))


async def _line(stdout: asyncio.StreamReader, kind: str) -> list[str]:
    got, *values = (await stdout.readline()).decode().split() or ["exit"]
    if got != kind:
        raise RuntimeError(f"post_load said {got!r}, expected {kind!r} (its stderr says why)")
    return values


async def _relay(stdin: asyncio.StreamWriter, progress: Any) -> None:
    """The slowest subscriber's progress, whenever it moves (read as often as the
    subscribers write it: a shorter sleep rounds to none on uvloop, and spins)."""
    told = -1
    while True:
        if (low := min(progress)) != told:
            stdin.write(b"progress %d\n" % low)
            told = low
        await asyncio.sleep(PROGRESS_EVERY)


def _result(figures: list[str], plan: Plan, own_cpu: float) -> Result:
    sent, accepted, refused, first_send_ns, last_answer_ns = map(int, figures[:5])
    channels = len(plan.channels)
    result = Result(first_send_ns=first_send_ns or time.time_ns(), last_receive_ns=last_answer_ns)
    result.publisher_cpu = float(figures[5])
    result.cpu = own_cpu + result.publisher_cpu
    result.acks = Acks(entries=accepted, errors=refused)
    result.published = {
        c: sent // channels + (i < sent % channels) for i, c in enumerate(plan.channels)
    }
    return result
