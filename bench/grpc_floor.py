"""The grpc.aio floor: messages/s of a bidi servicer that does no work at all.

    .venv/bin/python -m bench.grpc_floor [--seconds 3] [--in-flight 64] [--size 300]

A generic handler echoes raw bytes on one bidi stream; the server is pinned to core 0 and
the client to core 1, as in the suite. Whatever the gateway does per `Publish` request
comes on top of this, so single-entry batches can never go faster than it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import grpc

from bench.servers import SERVER_CORE, pinned

METHOD = "/floor.Echo/Echo"


async def serve(port: int) -> None:
    async def echo(requests: AsyncIterator[bytes], _: object) -> AsyncIterator[bytes]:
        async for request in requests:
            yield request

    handler = grpc.method_handlers_generic_handler(
        "floor.Echo", {"Echo": grpc.stream_stream_rpc_method_handler(echo)}
    )
    server = grpc.aio.server(handlers=(handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


async def measure(port: int, seconds: float, in_flight: int, size: int) -> float:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.stream_stream(METHOD)()
        room = asyncio.Semaphore(in_flight)
        received = 0

        async def read() -> None:
            nonlocal received
            async for _ in call:
                received += 1
                room.release()

        reader = asyncio.ensure_future(read())
        message = b"x" * size
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            await room.acquire()
            await call.write(message)
        done = received
        elapsed = time.monotonic() - started
        await call.done_writing()
        await reader
        return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_floor", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--size", type=int, default=300, help="bytes per message")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the server process
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    port = 20_000 + os.getpid() % 20_000
    command = [sys.executable, "-m", "bench.grpc_floor", "--serve", str(port)]
    server = subprocess.Popen(pinned(command, SERVER_CORE), stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        os.sched_setaffinity(0, {1 - SERVER_CORE})
        rate = asyncio.run(measure(port, args.seconds, args.in_flight, args.size))
        print(f"grpc.aio echo, one bidi stream, {args.in_flight} in flight: {rate:,.0f} messages/s")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
