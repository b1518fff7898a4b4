"""Faults against a real gateway process: garbage on both ports, broken HTTP/2 and protobuf,
clients that stop reading or vanish, connection churn. After each, the gateway still serves,
has logged no error for its clients' mistakes, and has lost or half-written nothing acked."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from logs_gateway.v1 import logs_pb2 as pb

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


def port(address: str) -> int:
    """The port of a URL or host:port."""
    return int(address.rsplit(":", 1)[1])


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


# -- garbage on the gRPC port: HTTP/2 frames and protobuf ------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 8, 9
END_STREAM, END_HEADERS = 0x1, 0x4
PUBLISH = "/logs_gateway.v1.LogIngest/Publish"
SUBSCRIBE = "/logs_gateway.v1.LogStream/Subscribe"


def h2(
    kind: int, payload: bytes = b"", *, stream: int = 0, flags: int = 0, length: int = -1
) -> bytes:
    """One HTTP/2 frame; `length` may lie about the payload's size."""
    size = len(payload) if length < 0 else length
    return size.to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def hpack(headers: list[tuple[str, str]]) -> bytes:
    """Header block of literal fields without indexing (no Huffman): no HPACK state needed."""
    return b"".join(b"\0" + _hpack_string(n) + _hpack_string(v) for n, v in headers)


def _hpack_string(text: str) -> bytes:
    data, n = text.encode(), len(text.encode())
    if n < 127:
        return bytes([n]) + data
    n -= 127
    out = bytearray([127])
    while n >= 128:
        out.append(n % 128 + 128)
        n //= 128
    return bytes([*out, n]) + data


def grpc_headers(
    token: str, stream: int = 1, *, path: str = PUBLISH, flags: int = END_HEADERS
) -> bytes:
    fields = [(":method", "POST"), (":scheme", "http"), (":path", path)]
    fields += [(":authority", "gateway"), ("content-type", "application/grpc"), ("te", "trailers")]
    fields.append(("authorization", f"Bearer {token}"))
    return h2(HEADERS, hpack(fields), stream=stream, flags=flags)


def grpc_message(message: bytes, *, compressed: bool = False, length: int = -1) -> bytes:
    size = len(message) if length < 0 else length
    return bytes([compressed]) + size.to_bytes(4, "big") + message


def h2_garbage(run: Running) -> dict[str, bytes]:
    """Broken HTTP/2 conversations with the gRPC server, by name. Every entry they carry
    says "must not be stored"."""
    token = run.token(publish=[GARBAGE])
    start = PREFACE + h2(SETTINGS)
    call = start + grpc_headers(token)
    request = pb.PublishRequest(
        producer_id="h2", sequence=1, entries=[entry(GARBAGE, "must not be stored")]
    ).SerializeToString()
    rapid_reset = b"".join(
        grpc_headers(token, n) + h2(RST_STREAM, (8).to_bytes(4, "big"), stream=n)
        for n in range(1, 1000, 2)
    )
    continuation = h2(CONTINUATION, hpack([("x-a", "b")]), stream=1)
    return {
        "random bytes": random.Random(2).randbytes(4096),
        "HTTP/1.1 request": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "preface then garbage": PREFACE + random.Random(3).randbytes(512),
        "frame past the size limit": start + h2(DATA, b"x" * 100, stream=1, length=0xFFFFFF),
        "truncated frame": call + h2(DATA, grpc_message(request)[:10], stream=1, length=100),
        "truncated gRPC message": call
        + h2(DATA, grpc_message(request[:10], length=len(request)), stream=1, flags=END_STREAM),
        "gRPC length past 4 MiB": call
        + h2(DATA, grpc_message(request, length=64 << 20), stream=1, flags=END_STREAM),
        "compressed flag, no encoding": call
        + h2(DATA, grpc_message(request, compressed=True), stream=1, flags=END_STREAM),
        "bad HPACK index": start + h2(HEADERS, b"\xff\xff\xff\x0f", stream=1, flags=END_HEADERS),
        "even stream id": start + grpc_headers(token, 2),
        "DATA on an idle stream": start + h2(DATA, grpc_message(request), stream=3),
        "a hundred pings": start + h2(PING, b"\0" * 8) * 100,
        "zero window update": start + h2(WINDOW_UPDATE, b"\0" * 4),
        "window past 2^31": start + h2(SETTINGS, b"\x00\x04\xff\xff\xff\xff"),
        "unknown frame type": start + h2(0xEE, b"?" * 16, stream=1),
        "no :path": start + h2(HEADERS, hpack([(":method", "POST")]), stream=1, flags=END_HEADERS),
        "CONTINUATION flood": start + grpc_headers(token, flags=0) + continuation * 2000,
        "rapid reset": start + rapid_reset,
    }


async def test_broken_http2_on_the_grpc_port_is_refused_and_the_server_lives_on(
    target: Running,
) -> None:
    mark = LogMark(target)
    grpc_port = port(target.grpc_target)
    for data in h2_garbage(target).values():
        await exchange(grpc_port, data, wait=0.3)
    # The same framing, complete, is a call the gateway answers: the garbage above was
    # refused for what was wrong with it, not for how these tests frame HTTP/2.
    token = target.token(publish=[GARBAGE])
    request = pb.PublishRequest(entries=[entry(GARBAGE, "raw frames")]).SerializeToString()
    whole = PREFACE + h2(SETTINGS) + grpc_headers(token)
    whole += h2(DATA, grpc_message(request), stream=1, flags=END_STREAM)
    assert await exchange(grpc_port, whole, wait=1.0)
    await still_serves(target, "after http/2 garbage")
    assert target.process is not None and target.process.poll() is None
    stored = await history(target, GARBAGE)
    assert "raw frames" in stored and "must not be stored" not in stored
    assert mark.errors() == []


async def history(run: Running, channel: str) -> list[str]:
    """Messages of every entry of `channel` still in history, oldest first."""
    token = run.token(subscribe=[channel])
    async with open_stream(run.http, channel, token) as live:
        epoch = (await live.next()).id.split("-")[0]
    messages = []
    async with open_stream(run.http, channel, token, last_event_id=f"{epoch}-0") as stream:
        with contextlib.suppress(TimeoutError):
            while True:
                event = await stream.next(timeout=0.5)
                if event.event == "log":
                    messages.append(event.data["message"])
    return messages


def protobuf_garbage() -> dict[str, bytes]:
    """PublishRequest bytes that do not parse, by name; each would carry "must not be stored"."""
    good = pb.PublishRequest(
        producer_id="pb", sequence=1, entries=[entry(GARBAGE, "must not be stored")]
    ).SerializeToString()
    return {
        "truncated": good[:-3],
        "invalid UTF-8 in a string": good.replace(b"must not", b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8"),
        "length past the end": b"\x1a\x7f" + good[2:],
        "varint past 64 bits": b"\x10" + b"\xff" * 10 + b"\x01",
        "random bytes": random.Random(4).randbytes(256),
        "end-group without start": b"\x0c",
    }


async def test_protobuf_that_does_not_parse_is_invalid_argument(target: Running) -> None:
    mark = LogMark(target)
    token = [("authorization", f"Bearer {target.token(publish=[GARBAGE], subscribe=[GARBAGE])}")]
    async with grpc.aio.insecure_channel(target.grpc_target) as channel:
        publish = channel.stream_stream(PUBLISH, lambda b: b, pb.PublishAck.FromString)
        subscribe = channel.unary_stream(SUBSCRIBE, lambda b: b, pb.LogEvent.FromString)
        for raw in protobuf_garbage().values():
            for call in (publish(iter([raw]), metadata=token), subscribe(raw, metadata=token)):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call.read()
                assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    await still_serves(target, "after protobuf garbage")
    assert "must not be stored" not in await history(target, GARBAGE)
    assert mark.errors() == []


async def test_unknown_fields_are_ignored_and_a_wrong_wire_type_reads_as_unknown(
    target: Running,
) -> None:
    """Protobuf's rules, which keep old gateways talking to newer clients."""
    token = [("authorization", f"Bearer {target.token(publish=[GARBAGE])}")]
    good = pb.PublishRequest(
        producer_id="unknown", sequence=1, entries=[entry(GARBAGE, "with unknown fields")]
    ).SerializeToString()
    async with grpc.aio.insecure_channel(target.grpc_target) as channel:
        publish = channel.stream_stream(PUBLISH, lambda b: b, pb.PublishAck.FromString)
        extra = b"\xf8\x06\x01\xfa\x06\x02hi"  # fields 111 (a number) and 111 (text)
        unknown = await publish(iter([good + extra]), metadata=token).read()
        wrong_type = await publish(iter([b"\x08\x05"]), metadata=token).read()
    assert [r.code for r in unknown.results] == [0]
    assert list(wrong_type.results) == []  # field 1 sent as a number: unknown, so no entries
    assert "with unknown fields" in await history(target, GARBAGE)
