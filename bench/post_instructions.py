"""Instructions per single-entry POST under callgrind: the steady figure of a POST's CPU
(`python -m bench.post_instructions [gateway|aiohttp|llhttp]`).

The server runs under `valgrind --tool=callgrind` with counting off; one keep-alive
connection sends `--warm` POSTs, then counting is turned on (`callgrind_control`) for
`--posts` more, pipelined `--in-flight` at a time, and off again before the server stops.
Only the server's user-space instructions are counted, each thread apart, so the figure
hardly depends on what else the machine does (docs/PERFORMANCE.md): what does is the work
on the clock (the loop-lag timer, grpc's pollers), which a busy machine stretches over more
of the POSTs; the event loop's thread has the least of it. `--keep FILE` keeps that
thread's callgrind output for `callgrind_annotate`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httptools

from bench import entries
from bench.servers import HOST, free_port
from gateway.core.tokens import Signer

ISSUER = AUDIENCE = "logs-gateway"
CHANNEL = "logs:bench:calls:c0"


def server_command(kind: str, port: int) -> list[str]:
    if kind != "gateway":
        llhttp = ["--llhttp"] if kind == "llhttp" else []
        return [sys.executable, "-m", "bench.bare_http", str(port), *llhttp]
    command = [sys.executable, "-m", "gateway", "serve", "--host", HOST, "--http-port", str(port)]
    command += ["--grpc-port", str(free_port()), "--publish-rate", "0", "--log-level", "warning"]
    return command


def request(token: str, path: str) -> bytes:
    body = entries.http_entry(CHANNEL, time.time_ns())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Answers:
    """Counts the answers read on the connection; every one must be a 200."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.count = 0

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if status != 200:
            raise RuntimeError(f"a POST was answered {status}")
        self.count += 1


def post(sock: socket.socket, answers: Answers, one: bytes, count: int, in_flight: int) -> None:
    """Send `count` POSTs, at most `in_flight` unanswered, and read every answer."""
    sent, start = 0, answers.count
    while answers.count - start < count:
        ahead = min(in_flight - (sent - (answers.count - start)), count - sent)
        if ahead > 0:
            sock.sendall(one * ahead)
            sent += ahead
        answers.parser.feed_data(sock.recv(1 << 16))


def connect(port: int, process: subprocess.Popen[bytes], timeout: float) -> socket.socket:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited while starting")
        try:
            return socket.create_connection((HOST, port), timeout=60)
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("the server did not listen in time")


def control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def totals(out: Path) -> dict[str, int]:
    """The instructions counted in each of callgrind's output files (one per thread)."""
    counted = {}
    for part in sorted(out.parent.glob(out.name + "*")):
        lines = part.read_text().splitlines()
        figures = [int(ln.split()[1]) for ln in lines if ln.startswith(("totals:", "summary:"))]
        if figures:  # a thread's file; `totals:` once counting ran in it
            counted[part.name] = max(figures)
    return counted


def measure(
    kind: str, warm: int, posts: int, in_flight: int, keep: Path | None
) -> tuple[float, float]:
    """Instructions per POST: the process's, and its first thread's (the event loop's,
    without the threads of grpc, whose polls follow the clock, not the POSTs)."""
    secret = secrets.token_hex(32)
    signer = Signer(secret=secret.encode(), issuer=ISSUER, audience=AUDIENCE)
    token = signer.mint("bench-service", publish=["logs:bench:>"], ttl=3600)
    one = request(token, "/api/logs/publish" if kind == "gateway" else "/")
    folder = Path(tempfile.mkdtemp(prefix="post-instructions-"))
    out = folder / "callgrind.out"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGS_GATEWAY_")}
    env["LOGS_GATEWAY_JWT_SECRET"] = secret
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes"]
    command += [f"--callgrind-out-file={out}", *server_command(kind, port)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        with connect(port, process, timeout=300) as sock:
            answers = Answers()
            post(sock, answers, one, warm, in_flight)
            control(process.pid, "--instr=on")
            post(sock, answers, one, posts, in_flight)
            control(process.pid, "--instr=off")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        counted = totals(out)
        loop_thread = counted[min(counted)]
        if keep is not None:
            shutil.copy(out.parent / min(counted), keep)
        return sum(counted.values()) / posts, loop_thread / posts
    finally:
        if process.poll() is None:
            process.kill()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "server", nargs="?", default="gateway", choices=["gateway", "aiohttp", "llhttp"]
    )
    parser.add_argument("--warm", type=int, default=300)
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=16)
    parser.add_argument("--keep", type=Path, help="copy callgrind's output here")
    a = parser.parse_args()
    total, loop = measure(a.server, a.warm, a.posts, a.in_flight, a.keep)
    print(f"{a.server}: {total:,.0f} instructions per POST, {loop:,.0f} on the loop's thread")


if __name__ == "__main__":
    main()
