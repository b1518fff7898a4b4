"""`--workers N`: N gateway processes sharing the ports, supervised, on the Redis broker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest

from gateway.app import cli
from gateway.app.workers import BOOT_SECONDS
from tests.conftest import Running, entry, gateway_process, wait_for
from tests.redis_server import RedisServer
from tests.sse_client import open_stream

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
    assert "--workers=2 needs the Redis broker" in capsys.readouterr().err


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
