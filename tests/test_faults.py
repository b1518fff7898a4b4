"""Faults against a real gateway process: garbage on both ports, broken HTTP/2 and protobuf,
clients that stop reading or vanish, connection churn. After each, the gateway still serves,
has logged no error for its clients' mistakes, and has lost or half-written nothing acked."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import os
import random
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import pytest
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

from tests.conftest import Running, entry, free_port, gateway_process, wait_for
from tests.redis_server import RedisServer
from tests.sse_client import open_stream

GARBAGE = "logs:garbage:workspace1:checks"
T = TypeVar("T")
BULKY = "logs:garbage:workspace1:bulky"  # large entries, kept out of GARBAGE's history
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


async def exchange(port: int, data: bytes, wait: float = 0.5, enough: bytes = b"") -> bytes:
    """Send raw bytes, then read what comes back until the server closes, `wait` passes
    with nothing more, or what came holds `enough`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    chunks = []
    try:
        writer.write(data)
        await writer.drain()
        while chunk := await asyncio.wait_for(reader.read(65536), wait):
            chunks.append(chunk)
            if enough and enough in b"".join(chunks):
                break
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
        name: status_of(await exchange(port(target.http), data, enough=b"\r\n"))
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
    token = target.token(publish=[GARBAGE, BULKY])
    entries = [{"channel": BULKY, "message": "m" * 50_000} for _ in range(40)]
    async with httpx.AsyncClient(base_url=target.http, headers=target.headers(token)) as client:
        large = await client.post("/api/logs/publish", json={"entries": entries})
    assert large.status_code == 200
    assert [sorted(r) for r in large.json()["results"]] == [["cursor", "offset"]] * 40
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
        await exchange(grpc_port, data, wait=0.1)
    # The same framing, complete, is a call the gateway answers: the garbage above was
    # refused for what was wrong with it, not for how these tests frame HTTP/2.
    token = target.token(publish=[GARBAGE])
    request = pb.PublishRequest(entries=[entry(GARBAGE, "raw frames")]).SerializeToString()
    whole = PREFACE + h2(SETTINGS) + grpc_headers(token)
    whole += h2(DATA, grpc_message(request), stream=1, flags=END_STREAM)
    _, writer = await asyncio.open_connection("127.0.0.1", grpc_port)
    writer.write(whole)  # the connection stays open until the call is answered
    await wait_for_async(lambda: history(target, GARBAGE), lambda h: "raw frames" in h)
    writer.close()
    await still_serves(target, "after http/2 garbage")
    assert target.process is not None and target.process.poll() is None
    assert "must not be stored" not in await history(target, GARBAGE)
    assert mark.errors() == []


async def wait_for_async(
    get: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = 10
) -> T:
    """Call `get` until its value is `done`."""
    deadline = time.monotonic() + timeout
    while not done(value := await get()):
        assert time.monotonic() < deadline, f"still {value!r}"
        await asyncio.sleep(0.1)
    return value


async def history(run: Running, channel: str) -> list[str]:
    """Messages of every entry of `channel` in history, oldest first: an end marker is
    published, then history is replayed from its start up to that marker."""
    token = run.token(subscribe=[channel], publish=[channel])
    async with open_stream(run.http, channel, token) as live:
        epoch = (await live.next()).id.split("-")[0]
    marker = f"end-{uuid.uuid4().hex}"
    await run.publish(token, [[entry(channel, marker)]], producer=marker)
    messages = []
    async with open_stream(run.http, channel, token, last_event_id=f"{epoch}-0") as stream:
        while (event := await stream.next(timeout=10)).event != "log" or (
            event.data["message"] != marker
        ):
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


# -- a subscriber that stops reading, among a thousand that read -----------------------

FAN = "logs:fanout:workspace1:probes"
BULK = "logs:fanout:workspace1:bulk"
PROBE = re.compile(rb"probe-(\d+)-")


class Reader(asyncio.Protocol):
    """A subscriber that reads everything and notes when each probe entry arrived."""

    def __init__(self, ready: asyncio.Future[None], seen: dict[int, list[float]]) -> None:
        self.ready, self.seen, self.tail = ready, seen, b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now, text = time.monotonic(), self.tail + data
        if not self.ready.done() and b"event: ready" in text:
            self.ready.set_result(None)
        for match in PROBE.finditer(data):
            self.seen[int(match[1])].append(now)
        self.tail = text[-32:]


async def readers(
    run: Running, channel: str, n: int
) -> tuple[list[Reader], dict[int, list[float]]]:
    """`n` subscribers of `channel`, each with a token of its own, all past `ready`."""
    seen: dict[int, list[float]] = collections.defaultdict(list)
    out: list[Reader] = []
    while len(out) < n:  # in waves, as the gateway's listen backlog is no concern here
        out += await asyncio.gather(
            *(reader(run, channel, seen) for _ in range(min(100, n - len(out))))
        )
    return out, seen


async def reader(run: Running, channel: str, seen: dict[int, list[float]]) -> Reader:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    _, protocol = await loop.create_connection(
        functools.partial(Reader, ready, seen), "127.0.0.1", port(run.http)
    )
    assert protocol.transport is not None
    protocol.transport.write(stream_request(channel, run.token(subscribe=[channel])))
    await ready
    return protocol


def stream_request(channel: str, token: str) -> bytes:
    return (
        f"GET /api/logs/stream?channels={channel} HTTP/1.1\r\nHost: gateway\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()


async def probe_latencies(
    run: Running, token: str, seen: dict[int, list[float]], first: int, n: int, fan: int
) -> list[float]:
    """Publish probes one by one; for each, the time until all `fan` readers had it."""
    out = []
    for i in range(first, first + n):
        sent = time.monotonic()
        await run.publish(token, [[entry(FAN, f"probe-{i}-")]], producer=f"probe{i}")
        await wait_for(lambda i=i: len(seen[i]) == fan, timeout=30)
        out.append(max(seen[i]) - sent)
    return out


def stuck_subscriber(run: Running, channel: str) -> socket.socket:
    """A subscriber whose receive window is tiny and never read from."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port(run.http)))
    sock.sendall(stream_request(channel, run.token(subscribe=[channel])))
    return sock


async def slow_consumer_drops(run: Running) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(run.http + "/metrics")).text
    match = re.search(r"^logs_gateway_slow_consumer_drops_total (\S+)$", text, re.MULTILINE)
    return float(match[1]) if match else 0.0


async def test_a_stuck_subscriber_is_cut_while_a_thousand_others_keep_their_latency() -> None:
    with gateway_process() as run:
        fan, bulk = run.token("probe", publish=[FAN]), run.token("bulk", publish=[BULK])
        subscribers, seen = await readers(run, FAN, 1000)
        before = await probe_latencies(run, fan, seen, 0, 10, len(subscribers))
        stuck = stuck_subscriber(run, BULK)
        big = [entry(BULK, "b" * 60_000) for _ in range(4)]
        during: list[float] = []
        for batch in range(100):  # up to 24 MB at the stuck one; it is cut long before
            await run.publish(bulk, [big], producer=f"bulk{batch}")
            during += await probe_latencies(run, fan, seen, 100 + batch, 1, len(subscribers))
            if await slow_consumer_drops(run) and len(during) >= 10:
                break
        assert await slow_consumer_drops(run) == 1, "the stuck subscriber was never cut"
        ratio = statistics.median(during) / statistics.median(before)
        assert ratio < 4, f"median fan-out latency {ratio:.1f}x what it was"
        stuck.close()
        for subscriber in subscribers:
            assert subscriber.transport is not None and not subscriber.transport.is_closing()
            subscriber.transport.close()


# -- connection churn ------------------------------------------------------------------

CHURN = "logs:churn:workspace1:wf"


def footprint(run: Running) -> tuple[int, int]:
    """(resident memory in KiB, open file descriptors) of a gateway process."""
    assert run.process is not None
    status = Path(f"/proc/{run.process.pid}/status").read_text()
    rss = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)[1])  # type: ignore[index]
    return rss, len(os.listdir(f"/proc/{run.process.pid}/fd"))


async def hub_state(run: Running) -> tuple[int, dict[str, int]]:
    """(open subscriptions, subscribers per channel) from /admin/logs/stats."""
    async with httpx.AsyncClient() as client:
        stats = await client.get(
            run.http + "/admin/logs/stats", headers=run.headers(run.token(admin=True))
        )
    doc = stats.json()
    return doc["connections"], doc["subscribers_per_channel"]


async def one_cycle(run: Running, token: str, kind: int) -> None:
    """Open a stream and leave, in one of four ways: politely after `ready`, with a reset
    after `ready`, before the request is complete, or refused (a bad token)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port(run.http))
    request = stream_request(CHURN, token if kind != 3 else token[:-3] + "xyz")
    if kind == 2:
        writer.write(request[: len(request) // 2])
    else:
        writer.write(request)
        await reader.readuntil(b"event: ready" if kind != 3 else b"\r\n\r\n")
    if kind == 1:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
    await writer.wait_closed()


async def churn(run: Running, cycles: int, workers: int = 20) -> None:
    async def worker(w: int) -> None:
        token = run.token(f"churn{w}", subscribe=[CHURN])
        for i in range(cycles // workers):
            await one_cycle(run, token, i % 4)

    await asyncio.gather(*(worker(w) for w in range(workers)))


async def settled(run: Running) -> tuple[int, int]:
    """The process's footprint once every connection is gone from the hub."""
    deadline = time.monotonic() + 10
    while (await hub_state(run))[0] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert await hub_state(run) == (0, {})
    await asyncio.sleep(0.5)
    return footprint(run)


async def test_ten_thousand_connect_disconnect_cycles_leave_nothing_behind() -> None:
    with gateway_process() as run:
        await churn(run, 500)  # warm-up: caches and allocator pools reach their size
        rss_before, fds_before = await settled(run)
        await churn(run, 10_000)
        rss_after, fds_after = await settled(run)
        assert fds_after <= fds_before
        assert rss_after - rss_before < 4096, f"memory grew {rss_after - rss_before} KiB"


# -- a publisher that vanishes mid-stream ----------------------------------------------

ABORT = "logs:abort:workspace1:wf"
PIPELINING_PUBLISHER = """
import sys
import grpc
from logs_gateway.v1 import logs_pb2 as pb, logs_pb2_grpc as pb_grpc

target, token, channel = sys.argv[1:4]


def requests():
    for seq in range(1, 201):  # sent as fast as HTTP/2 flow control lets them go
        entries = [pb.LogEntry(channel=channel, body=f"b{seq}-{i}") for i in range(20)]
        yield pb.PublishRequest(producer_id="vanishing", sequence=seq, entries=entries)


with grpc.insecure_channel(target) as channel_:
    stub = pb_grpc.LogIngestStub(channel_)
    for ack in stub.Publish(requests(), metadata=[("authorization", "Bearer " + token)]):
        assert all(r.code == 0 for r in ack.results)
        print(ack.sequence, flush=True)
"""


def kill_after_acks(run: Running, acks: int) -> list[int]:
    """Run the pipelining publisher and SIGKILL it once `acks` acks came back."""
    token = run.token("vanishing", publish=[ABORT])
    command = [sys.executable, "-c", PIPELINING_PUBLISHER, run.grpc_target, token, ABORT]
    with subprocess.Popen(command, stdout=subprocess.PIPE) as child:
        assert child.stdout is not None
        acked = [int(child.stdout.readline()) for _ in range(acks)]
        child.kill()
        child.wait()
        return acked + [int(line) for line in child.stdout.read().split()]  # acks in the pipe


async def test_a_publisher_killed_mid_stream_loses_no_acked_entry_and_half_writes_none() -> None:
    with gateway_process("--publish-rate", "0", "--history-entries", "10000") as run:
        async with open_stream(run.http, ABORT, run.token(subscribe=[ABORT])) as live:
            await live.next()
            acked = await asyncio.to_thread(kill_after_acks, run, 30)
            stored = await history(run, ABORT)
            delivered: list[str] = []
            with contextlib.suppress(TimeoutError):
                while len(delivered) < len(stored):
                    delivered.append((await live.next(timeout=2)).data["message"])
        batches = collections.Counter(message.split("-")[0] for message in stored)
        assert set(batches.values()) == {20}, "a batch was half-written"
        assert {f"b{seq}" for seq in acked} <= set(batches), "an acked batch is missing"
        assert len(stored) == len(set(stored)), "an entry was stored twice"
        assert delivered == stored, "the live subscriber did not get exactly the history"


# -- kill -9 and restarts of gateways and Redis, in a loop ------------------------------

LOOP = "logs:faults:workspace1:wf"
FAULTS = 24


class Node:
    """A gateway process on fixed ports, so it can be killed and started again in place;
    `flags`: more `serve` flags (the NATS fault tests' replicas)."""

    def __init__(self, broker_url: str, *flags: str) -> None:
        self.ports = (free_port(), free_port())
        self.broker_url = broker_url
        self.flags = flags
        self.stack = contextlib.ExitStack()
        self.run: Running | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.ports[1]}"

    def start(self) -> None:
        extra = ("--broker", self.broker_url, "--history-entries", "100000", "--publish-rate", "0")
        self.run = self.stack.enter_context(gateway_process(*extra, *self.flags, ports=self.ports))

    def stop(self, sig: int) -> None:
        assert self.run is not None and self.run.process is not None
        self.run.process.send_signal(sig)
        self.run.process.wait(timeout=15)
        self.stack.close()


class Producer:
    """Publishes batches one at a time to whichever gateway answers; after any failure it
    reconnects and resends its unacked batch with the same (producer, sequence). Batches of
    `size` entries to `channel`, `pause` seconds apart."""

    def __init__(
        self,
        name: str,
        token: str,
        targets: list[str],
        channel: str = LOOP,
        size: int = 5,
        pause: float = 0.02,
    ) -> None:
        self.name, self.token, self.targets = name, token, targets
        self.channel, self.size, self.pause = channel, size, pause
        self.acked: list[str] = []
        self.pending: tuple[int, list[str]] | None = None
        self.sequence = 0
        self.failures = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set() or self.pending:
            target = self.targets[self.failures % len(self.targets)]
            try:
                await self._stream(target, stop)
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError, TimeoutError, ConnectionError):
                self.failures += 1
                await asyncio.sleep(0.05)

    async def _stream(self, target: str, stop: asyncio.Event) -> None:
        metadata = [("authorization", f"Bearer {self.token}")]
        async with grpc.aio.insecure_channel(target) as channel:
            call = pb_grpc.LogIngestStub(channel).Publish(metadata=metadata)
            while not stop.is_set() or self.pending:
                sequence, messages = self.pending or self._next_batch()
                self.pending = (sequence, messages)
                request = [entry(self.channel, m) for m in messages]
                await call.write(
                    pb.PublishRequest(producer_id=self.name, sequence=sequence, entries=request)
                )
                ack = await asyncio.wait_for(call.read(), 3)
                if not isinstance(ack, pb.PublishAck):
                    raise ConnectionError("the stream ended")
                assert [r.code for r in ack.results] == [0] * len(messages)
                self.acked += messages
                self.pending = None
                await asyncio.sleep(self.pause)

    def _next_batch(self) -> tuple[int, list[str]]:
        self.sequence += 1
        return self.sequence, [f"{self.name}.{self.sequence}.{i}" for i in range(self.size)]


async def inject_faults(rng: random.Random, redis: RedisServer, nodes: list[Node]) -> list[str]:
    """`FAULTS` random faults, each followed by a restart of what it hit. A gateway restarts
    in the background (it takes a second or two) while the next faults hit the others."""
    done: list[str] = []
    restarting: dict[int, asyncio.Task[None]] = {}
    for _ in range(FAULTS):
        await asyncio.sleep(rng.uniform(0.05, 0.2))  # let traffic flow between faults
        up = [n for n in range(len(nodes)) if n not in restarting or restarting[n].done()]
        victim = rng.choice(["redis", *map(str, up)])
        sig = rng.choice([signal.SIGKILL, signal.SIGKILL, signal.SIGTERM])
        if victim == "redis":
            await asyncio.to_thread(redis.stop, sig)
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            await asyncio.to_thread(redis.start)
        else:
            node = nodes[int(victim)]
            await asyncio.to_thread(node.stop, sig)
            restarting[int(victim)] = asyncio.create_task(asyncio.to_thread(node.start))
        done.append(f"{signal.Signals(sig).name} {'' if victim == 'redis' else 'gateway '}{victim}")
    await asyncio.gather(*restarting.values())
    return done


async def test_acked_entries_survive_random_kills_of_gateways_and_redis_exactly_once(
    tmp_path: Path,
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    redis = RedisServer(tmp_path, persistent=True)  # fails in CI without redis-server
    redis.start()
    nodes = [Node(redis.url), Node(redis.url)]
    try:
        for node in nodes:
            node.start()
        signer = nodes[0].run.signer  # type: ignore[union-attr]
        targets = [node.target for node in nodes]
        producers = [
            Producer(f"p{n}", signer.mint(f"svc{n}", publish=[LOOP]), targets) for n in range(3)
        ]
        stop = asyncio.Event()
        running = [asyncio.create_task(p.run(stop)) for p in producers]
        faults = await inject_faults(rng, redis, nodes)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*running), 60)
        assert nodes[0].run is not None
        stored = collections.Counter(await history(nodes[0].run, LOOP))
    finally:
        for node in nodes:
            node.stack.close()
        redis.stop()
    acked = [m for p in producers for m in p.acked]
    context = f"seed {seed}, faults: {', '.join(faults)}"
    assert len(faults) >= 20 and sum(p.failures for p in producers) > 0, context
    assert sorted(stored) == sorted(acked), f"history is not every acked entry once ({context})"
