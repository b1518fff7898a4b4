"""`--workers N`: N gateway processes on one host, sharing the HTTP and gRPC ports.

The supervisor starts each worker as `logs-gateway serve --worker I` with the effective
configuration in its environment. Workers bind with SO_REUSEPORT, so the kernel spreads
new connections over them, and they share channels and history through the Redis broker
(one process's memory broker would be invisible to the others, hence the requirement).
The supervisor forwards SIGTERM/SIGINT (every worker drains), restarts a worker that dies,
and gives up if one dies while starting. A worker whose supervisor is gone stops itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from typing import TypeVar

from gateway.app.config import ENV_PREFIX, SETTINGS, Config

log = logging.getLogger("logs_gateway.workers")
RESTART_DELAY = 1.0  # seconds before a dead worker is replaced
BOOT_SECONDS = 5.0  # a worker dying sooner after its start is a startup failure
T = TypeVar("T")


def worker_env(config: Config) -> dict[str, str]:
    """This environment with the configuration as LOGS_GATEWAY_* variables (only the
    values that differ from the defaults, so an unset secret stays unset)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    for s in SETTINGS:
        value = getattr(config, s.name)
        if value != s.default:
            env[s.env] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def supervise(config: Config) -> int:
    """Run `config.workers` workers until SIGTERM or SIGINT; the exit code of the whole."""
    return asyncio.run(_Supervisor(config).run())


class _Supervisor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.env = worker_env(config)
        self.stop = asyncio.Event()
        self.workers: dict[int, asyncio.subprocess.Process] = {}
        self.started: dict[int, float] = {}
        # The workers' own metrics sockets (gateway/app/worker_metrics.py); mode 0700.
        self.folder = tempfile.mkdtemp(prefix="logs-gateway-workers-")

    async def run(self) -> int:
        try:
            return await self._run()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    async def _run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_keys)
        for number in range(1, self.config.workers + 1):
            await self._spawn(number)
        log.info("workers started", extra={"pids": [p.pid for p in self.workers.values()]})
        code = 0
        while (index := await self._next_exit()) is not None:
            detail = {"worker": index, "code": self.workers[index].returncode}
            if time.monotonic() - self.started[index] < BOOT_SECONDS:
                log.error("worker failed to start", extra=detail)
                code = 1
                break
            log.warning("worker exited; restarting it", extra=detail)
            if not await _stopped_within(self.stop, RESTART_DELAY):
                await self._spawn(index)
        await self._stop_all()
        return code

    def _reload_keys(self) -> None:
        """SIGHUP: every worker reads the key file again."""
        for process in self.workers.values():
            if process.returncode is None:
                process.send_signal(signal.SIGHUP)

    async def _spawn(self, index: int) -> None:
        command = [sys.executable, "-m", "gateway", "serve", "--worker", str(index)]
        command += ["--supervisor", str(os.getpid()), "--worker-folder", self.folder]
        # Its own session: a terminal's Ctrl-C reaches only the supervisor, which forwards
        # one SIGTERM (a second signal would stop a worker without draining).
        self.workers[index] = await asyncio.create_subprocess_exec(
            *command, env=self.env, start_new_session=True
        )
        self.started[index] = time.monotonic()

    async def _next_exit(self) -> int | None:
        """The worker that exits next, or None once the supervisor is told to stop."""
        exits = {asyncio.ensure_future(p.wait()): i for i, p in self.workers.items()}
        stopping = asyncio.ensure_future(self.stop.wait())
        done, pending = await asyncio.wait({stopping, *exits}, return_when="FIRST_COMPLETED")
        for future in pending:
            future.cancel()
        return None if stopping in done else next(exits[f] for f in done)

    async def _stop_all(self) -> None:
        """Every worker drains within its grace period; any still running after it is killed."""
        running = [p for p in self.workers.values() if p.returncode is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        waits = asyncio.gather(*(p.wait() for p in running))
        try:
            await asyncio.wait_for(waits, self.config.grace_seconds + 5)
        except TimeoutError:
            for process in running:
                if process.returncode is None:
                    process.kill()
            await asyncio.gather(*(p.wait() for p in running))


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


def follow_supervisor(supervisor: int, on_ready: Callable[[T], None] | None) -> Callable[[T], None]:
    """A worker's on_ready: run `on_ready`, then drain (SIGTERM to itself) when the
    supervisor process is gone, so no worker outlives a killed supervisor."""

    def ready(gateway: T) -> None:
        if on_ready is not None:
            on_ready(gateway)
        try:  # a pidfd becomes readable when its process exits (Linux 5.3+)
            watch = os.pidfd_open(supervisor)
        except ProcessLookupError:
            _supervisor_gone()
            return
        asyncio.get_running_loop().add_reader(watch, _supervisor_gone, watch)

    return ready


def _supervisor_gone(watch: int | None = None) -> None:
    if watch is not None:
        asyncio.get_running_loop().remove_reader(watch)
        os.close(watch)
    log.warning("supervisor gone; draining")
    os.kill(os.getpid(), signal.SIGTERM)
