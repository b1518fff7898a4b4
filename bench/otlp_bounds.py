"""OTLP bodies at the size limit, of every shape, and what a bystander sees (issue 23).

The bystander of bench.sampling publishes 100 entries/s to its own channel and follows
it over SSE, in a process of its own; its latency (publish sent -> entry received) is
summed up per shape while `--repeat` bodies of that shape (each about 4 MiB, the default
--max-message-bytes) are POSTed to /v1/logs one after another. Also printed: the
gateway's CPU per body and its answer.

    python -m bench.otlp_bounds [--repeat 5] [--tree PATH] [--only TEXT]

`--tree` runs the gateway of another checkout (an older commit) for a before/after table.
Every load is bounded and on loopback; the gateway is pinned to its own core.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from pathlib import Path

import httpx

from bench import servers
from bench.sampling import Sampler
from gateway.core.tokens import Signer
from tests.test_otlp_bounds import JSON_SHAPES, SHAPES, json_attributes, json_request

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
CHANNEL = "logs:bench:ws0:otlp"


def _records(count: int, attributes: int, text: str) -> bytes:
    """`count` records of `attributes` attributes and a body of `text`: accepted."""
    record = {
        "body": {"stringValue": text},
        "attributes": [
            {"key": "logs_gateway.channel", "value": {"stringValue": CHANNEL}},
            *json_attributes(attributes),
        ],
    }
    return json_request([{"scopeLogs": [{"logRecords": [record] * count}]}])


def shapes() -> dict[str, tuple[bytes, str]]:
    """Each shape: its body and content type."""
    out = {f"protobuf, {name}": (body, PROTOBUF) for name, (body, _) in SHAPES.items()}
    out |= {f"JSON, {name}": (body, JSON) for name, (body, _) in JSON_SHAPES.items()}
    out["JSON, 1,000 records of 60 attributes (accepted)"] = (_records(1000, 60, "m"), JSON)
    out["JSON, 1,000 records of 3.9 KB (accepted)"] = (_records(1000, 0, "x" * 3900), JSON)
    out["JSON, one 4 MB string"] = (_records(1, 0, "x" * 4_000_000), JSON)
    return out


async def send(http: str, token: str, body: bytes, content_type: str, repeat: int) -> str:
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=120) as client:
        for _ in range(repeat):
            answer = await client.post(http + "/v1/logs", content=body, headers=headers)
    return str(answer.status_code)


async def rows(server: servers.Server, signer: Signer, repeat: int, only: str) -> None:
    http = f"http://{servers.HOST}:{server.http_port}"
    reader = signer.mint("bench", subscribe=["logs:>"])
    writer = signer.mint("bench", publish=["logs:>"])
    print("| shape | answer | gateway CPU per body | bystander |\n| --- | --- | --- | --- |")
    with Sampler.bystander(http, server.http_port, reader, writer) as by:
        for _ in range(60):  # until the bystander, a process of its own, is under way
            await asyncio.sleep(1)
            if by.window().samples:
                break
        await asyncio.sleep(3)
        print(f"| idle | | | {by.window().summary()} |", flush=True)
        for name, (body, content_type) in shapes().items():
            if only not in name:
                continue
            cpu = server.cpu()
            status = await send(http, writer, body, content_type, repeat)
            per = (server.cpu() - cpu) / repeat
            await asyncio.sleep(0.5)  # the last body's entries reach the bystander's window
            print(
                f"| {name} | {status} | {per * 1000:.0f} ms | {by.window().summary()} |", flush=True
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tree", type=Path, help="run the gateway of this checkout")
    parser.add_argument("--only", default="", help="shapes whose name has this text")
    args = parser.parse_args()
    secret = secrets.token_hex(16)
    signer = Signer(secret=secret.encode(), issuer="logs-gateway", audience="logs-gateway")
    started = time.perf_counter()
    with servers.gateway(secret, tree=args.tree) as server:
        asyncio.run(rows(server, signer, args.repeat, args.only))
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
