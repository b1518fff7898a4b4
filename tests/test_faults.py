"""Faults against a real gateway process: garbage on both ports, broken HTTP/2 and protobuf,
clients that stop reading or vanish, connection churn. After each, the gateway still serves,
has logged no error for its clients' mistakes, and has lost or half-written nothing acked."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Running, entry, gateway_process
from tests.sse_client import open_stream

GARBAGE = "logs:garbage:workspace1:checks"
JWT_PREFIX = b"eyJhbGciOi"  # how every JWT this gateway signs begins


@pytest.fixture(scope="module")
def target() -> Iterator[Running]:
    with gateway_process() as run:
        yield run


# -- helpers ---------------------------------------------------------------------------


class LogMark:
    """The part of a gateway process's stderr written after this mark."""

    def __init__(self, run: Running) -> None:
        assert run.output is not None
        self._path = run.output / "stderr"
        self._offset = self._path.stat().st_size

    def text(self) -> str:
        with self._path.open("rb") as f:
            f.seek(self._offset)
            return f.read().decode("utf-8", "replace")

    def errors(self) -> list[dict[str, Any]]:
        """Records logged at warning or above since the mark."""
        records = [json.loads(line) for line in self.text().splitlines() if line]
        return [r for r in records if r["level"] not in ("debug", "info")]


async def exchange(port: int, data: bytes, wait: float = 0.5) -> bytes:
    """Send raw bytes, then read what comes back until the server closes or `wait` passes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    chunks = []
    try:
        writer.write(data)
        await writer.drain()
        while chunk := await asyncio.wait_for(reader.read(65536), wait):
            chunks.append(chunk)
    except (TimeoutError, ConnectionError):
        pass  # the server keeps the connection open, or cut it mid-write: both are fine
    finally:
        writer.close()
    return b"".join(chunks)


async def still_serves(run: Running, message: str) -> None:
    """Health answers, and an entry published now reaches a subscriber."""
    async with httpx.AsyncClient(base_url=run.http) as client:
        assert (await client.get("/health")).status_code == 200
    async with open_stream(run.http, GARBAGE, run.token(subscribe=[GARBAGE])) as stream:
        assert (await stream.next()).event == "ready"
        await run.publish(run.token(publish=[GARBAGE]), [[entry(GARBAGE, message)]], message)
        assert (await stream.next()).data["message"] == message


def port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# -- garbage on the HTTP port ----------------------------------------------------------


def http_garbage(run: Running) -> dict[str, bytes]:
    """Malformed, hostile and truncated HTTP/1.1 requests, by name."""
    token = run.token(publish=[GARBAGE])
    huge = run.token(subscribe=[GARBAGE], extra={"pad": "x" * 9000})  # a real JWT past 8 KiB
    head = "Host: 127.0.0.1\r\n"
    post = (
        f"POST /api/logs/publish HTTP/1.1\r\n{head}Authorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\n"
    )
    stream = f"GET /api/logs/stream?channels={GARBAGE} HTTP/1.1\r\n{head}"
    good = f'{{"channel":"{GARBAGE}","message":"x'
    cases = {
        "random bytes": random.Random(8).randbytes(4096).decode("latin-1"),
        "NUL in the method": "G\0T /health HTTP/1.1\r\n\r\n",
        "TLS ClientHello": bytes.fromhex("16030100a5010000a10303").decode("latin-1") + "\0" * 64,
        "HTTP/2 preface": "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "truncated request line": "GET /api/logs/str",
        "HTTP/0.9": "GET /\r\n",
        "unknown version": "GET /health HTTP/9.9\r\n\r\n",
        "absolute-form target": f"GET http://evil.example/health HTTP/1.1\r\n{head}\r\n",
        "dot segments": f"GET /../../../etc/passwd HTTP/1.1\r\n{head}\r\n",
        "encoded dot segments": f"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n{head}\r\n",
        "NUL in the path": f"GET /health%00.html HTTP/1.1\r\n{head}\r\n",
        "oversized token header": f"{stream}Authorization: Bearer {huge}\r\n\r\n",
        "oversized token cookie": f"{stream}Cookie: logs_gateway_token={huge}\r\n\r\n",
        "header without colon": f"GET /health HTTP/1.1\r\n{head}no colon here\r\n\r\n",
        "a thousand headers": f"GET /health HTTP/1.1\r\n{head}" + "X-A: b\r\n" * 1000 + "\r\n",
        "bytes past ASCII in a header": f"GET /health HTTP/1.1\r\n{head}X-A: \xff\xfe\x01\r\n\r\n",
        "bad percent-encoding": f"GET /api/logs/stream?channels=%ff%fe%00 HTTP/1.1\r\n{head}"
        f"Authorization: Bearer {token}\r\n\r\n",
        "ten thousand parameters": f"GET /api/logs/stream?{'a=1&' * 10_000} HTTP/1.1\r\n{head}\r\n",
        "websocket upgrade": f"{stream}Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "length and chunked": f"{post}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\n",
        "two lengths": f"{post}Content-Length: 5\r\nContent-Length: 50\r\n\r\n{{}}",
        "negative length": f"{post}Content-Length: -1\r\n\r\n",
        "bad chunk size": f"{post}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
        "short body": f"{post}Content-Length: 100\r\n\r\n{good}",
        "invalid UTF-8 body": with_body(post, f'{good}\xff\xfe"}}'),
        "deep JSON": with_body(post, "[" * 100_000),
        "number past 64 bits": with_body(post, f'{good}","attributes":{{"n":1{"0" * 30}}}}}'),
    }
    return {name: text.encode("latin-1") for name, text in cases.items()}


def with_body(head: str, body: str) -> str:
    return f"{head}Content-Length: {len(body)}\r\n\r\n{body}"


def status_of(response: bytes) -> int | None:
    """The status of the first response, or None when the server just closed."""
    if not response.startswith(b"HTTP/1."):
        return None
    return int(response.split(b" ", 2)[1])


async def test_garbage_on_the_http_port_is_refused_and_the_server_lives_on(
    target: Running,
) -> None:
    mark = LogMark(target)
    statuses = {
        name: status_of(await exchange(port(target.http), data))
        for name, data in http_garbage(target).items()
    }
    assert all(s is None or s < 500 for s in statuses.values()), statuses
    assert statuses["oversized token header"] in (400, 401, 431)
    assert statuses["invalid UTF-8 body"] == 400
    assert statuses["deep JSON"] in (400, 413)
    await still_serves(target, "after http garbage")
    assert target.process is not None and target.process.poll() is None
    assert mark.errors() == [], "a client's bad request was logged as a server error"
    assert JWT_PREFIX not in mark.text().encode(), "a token reached the log"


async def test_a_publish_body_arriving_in_pieces_is_read_whole(target: Running) -> None:
    """A body larger than one read, or sent slowly, is one request, not a truncated one."""
    token = target.token(publish=[GARBAGE])
    entries = [{"channel": GARBAGE, "message": "m" * 50_000} for _ in range(40)]
    async with httpx.AsyncClient(base_url=target.http, headers=target.headers(token)) as client:
        large = await client.post("/api/logs/publish", json={"entries": entries})
    assert large.status_code == 200 and len(large.json()["results"]) == 40
    body = json.dumps({"channel": GARBAGE, "message": "slow"}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port(target.http))
    writer.write(
        b"POST /api/logs/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n" % (token.encode(), len(body))
    )
    for piece in (body[:10], body[10:20], body[20:]):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.05)
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    writer.close()
