"""SDK publish throughput against a local gateway: entries per second, batched, acked.

    LOGS_GATEWAY_JWT_SECRET=... logs-gateway serve &      # or: scripts/demo
    LOGS_GATEWAY_JWT_SECRET=... .venv/bin/python bench/sdk_throughput.py --count 200000

Publishes `--count` entries (about 150 bytes each) with the asyncio Publisher as fast as
it accepts them, waits for every ack, and prints entries/s and this process's CPU time per
entry (the SDK's own cost, whatever the gateway's speed). Run it on an idle machine; the
gateway and this script each want a core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from logs_gateway import Options, Publisher, SyncPublisher

from gateway.app import config as cfg
from gateway.app import credentials

CHANNEL = "logs:bench:workspace1:sdk"


def token() -> str:
    given = os.environ.get("LOGS_GATEWAY_TOKEN")
    return given or credentials.signer(cfg.load()).mint("bench", publish=[CHANNEL], ttl=600)


async def run_async(target: str, count: int, options: Options) -> float:
    async with Publisher(token(), target, options=options) as pub:
        started = time.perf_counter()
        for i in range(count):
            await pub.publish(CHANNEL, f"bench entry {i}", attributes={"i": i, "stage": "load"})
        await pub.flush()
        elapsed = time.perf_counter() - started
        assert pub.stats.acked == count, pub.stats
    return elapsed


def run_sync(target: str, count: int, options: Options) -> float:
    with SyncPublisher(token(), target, options=options) as pub:
        started = time.perf_counter()
        for i in range(count):
            pub.publish(CHANNEL, f"bench entry {i}", attributes={"i": i, "stage": "load"})
        pub.flush()
        elapsed = time.perf_counter() - started
        assert pub.stats.acked == count, pub.stats
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--sync", action="store_true", help="measure SyncPublisher instead")
    args = parser.parse_args()
    options = Options(batch_size=args.batch_size, max_buffer=50_000)
    cpu_started = time.process_time()
    if args.sync:
        elapsed = run_sync(args.target, args.count, options)
    else:
        elapsed = asyncio.run(run_async(args.target, args.count, options))
    cpu = time.process_time() - cpu_started
    kind = "SyncPublisher" if args.sync else "Publisher"
    print(
        f"{kind}: {args.count} entries in {elapsed:.2f} s = {args.count / elapsed:,.0f} "
        f"entries/s (batch {args.batch_size}); SDK CPU {cpu / args.count * 1e6:.1f} us/entry"
    )


if __name__ == "__main__":
    main()
