"""The HTTP port's front (gateway/api/http/front.py) as a client on a raw socket sees it:
keep-alive and pipelining answered in order, chunked and compressed bodies, `Expect:
100-continue`, a connection handed to aiohttp on its first other request, smuggling forms
refused, and slow or idle connections closed."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import pytest

from gateway.api.http.answer import OkAnswer
from gateway.api.http.cors import Cors
from gateway.api.http.front import Front
from gateway.api.http.front_connection import PIPELINE, Connection
from gateway.api.http.front_limits import FrontLimits
from gateway.api.http.front_request import encoded, encoded_ok
from gateway.api.http.serve import REQUEST_ID
from tests.conftest import Running, running_gateway
from tests.test_faults import history
from tests.test_metrics import scrape, value

CHANNEL = "logs:etl:ws1:front"
PUBLISH = "POST /api/logs/publish HTTP/1.1\r\nHost: x\r\n"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


class Client:
    """One raw connection: write bytes, read answers one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> Answer:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), 10)
        return Answer(int(status_line.split(" ")[1]), headers, body)

    async def answer_to(self, request: bytes) -> Answer:
        await self.send(request)
        return await self.answer()

    async def closed(self, within: float = 30.0) -> bool:
        """Whether the server closes the connection (after what it sent) within `within`."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), within):
                pass
        except TimeoutError:
            return False
        except ConnectionError:
            pass
        return True


OPEN: list[Client] = []


@pytest.fixture
async def gw() -> AsyncIterator[Running]:
    async with running_gateway(http_header_timeout=1.0, http_idle_timeout=2.0) as run:
        try:
            yield run
        finally:
            while OPEN:
                client = OPEN.pop()
                client.writer.close()
                with contextlib.suppress(ConnectionError):
                    await client.writer.wait_closed()


async def connect(run: Running) -> Client:
    port = int(run.http.rsplit(":", 1)[1])
    OPEN.append(Client(*await asyncio.open_connection("127.0.0.1", port)))
    return OPEN[-1]


def publish(run: Running, message: str, extra: str = "", body: bytes | None = None) -> bytes:
    token = run.token(publish=[CHANNEL])
    data = body if body is not None else json.dumps({"channel": CHANNEL, "message": message})
    data = data if isinstance(data, bytes) else data.encode()
    head = (
        f"{PUBLISH}Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"{extra}Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def test_pipelined_publishes_are_answered_in_order_on_one_connection(gw: Running) -> None:
    client = await connect(gw)
    requests = [publish(gw, f"m{i}", extra=f"X-Request-Id: req-{i:04d}\r\n") for i in range(20)]
    await client.send(b"".join(requests))  # one write: read ahead of the answers
    answers = [await client.answer() for _ in requests]
    assert [a.status for a in answers] == [200] * 20
    assert [a.headers["x-request-id"] for a in answers] == [f"req-{i:04d}" for i in range(20)]
    offsets = [a.json()["results"][0]["offset"] for a in answers]  # type: ignore[index]
    assert offsets == sorted(offsets) and len(set(offsets)) == 20


async def test_a_chunked_and_a_gzip_body_are_read(gw: Running) -> None:
    client = await connect(gw)
    token = gw.token(publish=[CHANNEL])
    body = json.dumps({"channel": CHANNEL, "message": "chunked"}).encode()
    head = f"{PUBLISH}Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:7], body[7:])) + b"0\r\n\r\n"
    await client.send(head.encode() + b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
    assert (await client.answer()).status == 200
    packed = gzip.compress(json.dumps({"channel": CHANNEL, "message": "gz"}).encode())
    await client.send(publish(gw, "", extra="Content-Encoding: gzip\r\n", body=packed))
    assert (await client.answer()).status == 200


async def test_expect_100_continue_is_answered_before_the_body_and_refused_without(
    gw: Running,
) -> None:
    client = await connect(gw)
    request = publish(gw, "after continue", extra="Expect: 100-continue\r\n")
    head, body = request.split(b"\r\n\r\n", 1)
    await client.send(head + b"\r\n\r\n")
    interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 10)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    await client.send(body)
    assert (await client.answer()).status == 200
    # No token: the refusal comes at once, never a 100, and the connection ends.
    refused = await connect(gw)
    await refused.send(
        f"{PUBLISH}Content-Type: application/json\r\nExpect: 100-continue\r\n"
        "Content-Length: 10\r\n\r\n".encode()
    )
    answer = await refused.answer()
    assert answer.status == 401 and answer.headers["connection"] == "close"


async def test_a_publish_then_a_stream_on_one_connection_hand_it_to_aiohttp(
    gw: Running,
) -> None:
    """A browser's sequence: its connection goes to aiohttp at its first other request,
    with the bytes of that request; what the front answered before stays answered."""
    client = await connect(gw)
    token = gw.token(subscribe=[CHANNEL], publish=[CHANNEL])
    await client.send(publish(gw, "before the stream"))
    assert (await client.answer()).status == 200
    await client.send(
        f"GET /api/logs/stream?channels={CHANNEL}&last_event_id=0-0 HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
    seen = b""
    while b"before the stream" not in seen:
        seen += await asyncio.wait_for(client.reader.read(65536), 10)


async def test_a_pipelined_publish_and_health_are_answered_in_order(gw: Running) -> None:
    """The hand-off waits for the answers the front owes: publish, /health, publish."""
    client = await connect(gw)
    health = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    await client.send(publish(gw, "one") + health + publish(gw, "two"))
    answers = [await client.answer() for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert "results" in answers[0].json() and "results" in answers[2].json()  # type: ignore[operator]
    assert answers[1].json() == {"status": "ok"} or b"results" not in answers[1].body


SMUGGLING = {
    "length and chunked": "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two lengths": "Content-Length: 5\r\nContent-Length: 6\r\n\r\n{}",
    "a signed length": "Content-Length: +2\r\n\r\n{}",
    "a length list": "Content-Length: 2, 2\r\n\r\n{}",
    "a space before the colon": "Content-Length : 2\r\n\r\n{}",
    "chunked, then gzip": "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "gzip alone": "Transfer-Encoding: gzip\r\n\r\n{}",
    "a look-alike coding": "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "two codings lines": "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
    "a bad chunk size": "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "a chunk size with a sign": "Transfer-Encoding: chunked\r\n\r\n+2\r\n{}\r\n0\r\n\r\n",
    "a chunk size past 64 bits": "Transfer-Encoding: chunked\r\n\r\n1" + "0" * 17 + "\r\n",
    "a chunk without its CRLF": "Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
    "obs-fold": "X-A: b\r\n c\r\nContent-Length: 2\r\n\r\n{}",
    "a bare LF": "Content-Length: 2\n\r\n{}",
    "a bare CR": "X-A: b\rContent-Length: 2\r\n\r\n{}",
    "a NUL in a header": "X-A: b\0c\r\nContent-Length: 2\r\n\r\n{}",
}


@pytest.mark.parametrize("form", list(SMUGGLING))
async def test_every_smuggling_form_is_refused_and_what_it_hides_is_never_served(
    gw: Running, form: str
) -> None:
    """Each form hides a second publish after the first's framing: the gateway answers 400
    and closes, and the hidden entry is never stored."""
    token = gw.token(publish=[CHANNEL])
    hidden = publish(gw, f"smuggled {form}").decode("latin-1")
    head = f"{PUBLISH}Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
    client = await connect(gw)
    await client.send((head + SMUGGLING[form] + hidden).encode("latin-1"))
    answer = await client.answer()
    assert answer.status == 400, (form, answer)
    assert await client.closed()
    # The channel's whole history after an end marker: nothing hidden was ever stored.
    assert not any(m.startswith("smuggled") for m in await history(gw, CHANNEL))


async def test_a_head_sent_too_slowly_is_cut_and_an_idle_connection_closed(
    gw: Running,
) -> None:
    slow = await connect(gw)
    await slow.send(b"POST /api/logs/publish HTTP/1.1\r\nHost: x\r\n")  # and no more
    idle = await connect(gw)
    await idle.send(publish(gw, "then idle"))
    assert (await idle.answer()).status == 200
    busy = await connect(gw)
    for i in range(8):  # 4 s in all, past both timeouts, a request every 0.5 s
        await busy.send(publish(gw, f"busy {i}"))
        assert (await busy.answer()).status == 200  # a connection in use is not cut
        await asyncio.sleep(0.5)
    assert await slow.closed(within=30.0)  # --http-header-timeout 1 s
    assert await idle.closed(within=30.0)  # --http-idle-timeout 2 s
    metrics = await scrape(gw)
    ended = "logs_gateway_http_connections_ended_total"
    assert value(metrics, ended, reason="head_timeout") == 1
    assert value(metrics, ended, reason="idle_timeout") == 1


async def test_heads_past_the_bounds_are_refused(gw: Running) -> None:
    cases = {
        "many headers": (PUBLISH + "X-A: b\r\n" * 200 + "\r\n", 431),
        "a long field": (PUBLISH + "X-A: " + "b" * 20_000 + "\r\n\r\n", 431),
        "a long target": ("POST /api/logs/publish?" + "a" * 9000 + " HTTP/1.1\r\n\r\n", 414),
        "a large head": (PUBLISH + ("X-A: " + "b" * 9000 + "\r\n") * 8 + "\r\n", 431),
    }
    for name, (head, status) in cases.items():
        client = await connect(gw)
        await client.send(head.encode())
        answer = await client.answer()
        assert answer.status == status, (name, answer)
        assert answer.json()["error"]["message"]  # type: ignore[index]
        assert await client.closed()
    metrics = await scrape(gw)
    ended = "logs_gateway_http_connections_ended_total"
    assert value(metrics, ended, reason="431") == 3
    assert value(metrics, ended, reason="414") == 1


class Reads:
    """A transport that records whether reading is paused, and takes what is written."""

    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0

    def pause_reading(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        self.paused = False

    def write(self, data: bytes) -> None:
        pass


async def test_pipelined_requests_are_read_ahead_with_their_bodies_up_to_the_bound() -> None:
    """PIPELINE requests are read ahead of their answers, the last one's body too (a client
    with that many in flight does not stop the reads each time); one more waits."""

    async def route(request: object) -> OkAnswer:
        raise AssertionError("not answered in this test")

    limits = FrontLimits(header_timeout=1.0, idle_timeout=2.0, max_connections=10)
    front = Front(
        cast(Any, None), {"/api/logs/publish": route}, cast(Any, None), Cors(frozenset()), limits
    )
    connection, transport = Connection(front), Reads()
    connection.connection_made(cast(Any, transport))
    one = f"{PUBLISH}Content-Length: 2\r\n\r\n{{}}".encode()
    connection.data_received(one * PIPELINE)
    assert not transport.pauses and len(connection.queue) == PIPELINE
    assert all(request.content.complete for request, _, _ in connection.queue)
    connection.data_received(one)
    assert transport.paused and len(connection.queue) == PIPELINE
    assert connection.serving is not None
    connection.serving.cancel()


@pytest.mark.parametrize("own", [(), (("Idempotent-Replayed", "true"),)])
@pytest.mark.parametrize("close", [False, True])
def test_an_ok_answer_is_written_as_the_web_response_it_stands_for(
    own: tuple[tuple[str, str], ...], close: bool
) -> None:
    """The front writes a route's OkAnswer from its fields, byte for byte as it writes the
    web.Response aiohttp gets for it."""
    answer = OkAnswer(b'{"results":[]}', "application/json; charset=utf-8", own)
    date = b"Mon, 07 Dec 2026 23:00:00 GMT"
    response = answer.response()
    response.headers[REQUEST_ID] = "req-1"
    assert encoded_ok(answer, "req-1", date, close) == encoded(response, date, close)


def test_an_ok_answer_with_a_line_break_in_a_header_is_not_written() -> None:
    answer = OkAnswer(b"{}", "application/json", (("X-Note", "a\r\nSet-Cookie: x=1"),))
    with pytest.raises(ValueError, match="line break"):
        encoded_ok(answer, "req-1", b"date", False)


async def test_requests_the_front_does_not_serve_are_served_by_aiohttp_as_before(
    gw: Running,
) -> None:
    """HTTP/1.0, a percent-encoded path, a coding the front does not read: aiohttp answers
    them, publish included, on the connection the front handed it."""
    token = gw.token(publish=[CHANNEL])
    body = json.dumps({"channel": CHANNEL, "message": "via aiohttp"})
    head = f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
    cases = {
        "HTTP/1.0": ("POST /api/logs/publish HTTP/1.0\r\n", "", 200),
        "an encoded path": ("POST /api/logs/%70ublish HTTP/1.1\r\nHost: x\r\n", "", 200),
        "a coding not read": (PUBLISH, "Content-Encoding: br\r\n", 400),  # aiohttp's own
        "a query": ("POST /api/logs/publish?a=1 HTTP/1.1\r\nHost: x\r\n", "", 200),
    }
    for name, (start, extra, status) in cases.items():
        client = await connect(gw)
        request = f"{start}{head}{extra}Content-Length: {len(body)}\r\n\r\n{body}"
        await client.send(request.encode())
        answer = await client.answer()
        assert answer.status == status, (name, answer)
        assert status != 200 or "x-request-id" in answer.headers  # through the pass
        if status == 200:  # the OkAnswer as a web.Response
            assert answer.headers["content-type"] == "application/json; charset=utf-8"


async def test_a_hand_off_after_chunked_and_gzip_bodies_starts_at_the_next_request(
    gw: Running,
) -> None:
    """The front knows where each request ends whatever its framing: a chunked publish
    whose data holds blank lines, a gzip one, then /health, all in one write."""
    token = gw.token(publish=[CHANNEL])
    head = f"{PUBLISH}Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
    body = b'{"channel": "%s",\r\n\r\n"message": "blank lines"}' % CHANNEL.encode()
    parts = (body[:9], body[9:40], body[40:])  # a blank line inside a chunk's data
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    packed = gzip.compress(json.dumps({"channel": CHANNEL, "message": "gz"}).encode())
    client = await connect(gw)
    await client.send(
        head.encode()
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + chunked
        + publish(gw, "", extra="Content-Encoding: gzip\r\n", body=packed)
        + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    answers = [await client.answer() for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert b"results" in answers[0].body and b"results" in answers[1].body
    assert b"results" not in answers[2].body


async def test_the_front_adds_the_cors_headers_of_a_listed_origin_as_aiohttp_does() -> None:
    page = "https://app.example.com"
    async with running_gateway(cors_origins=page) as run:
        client = await connect(run)
        try:
            for origin in (page, "https://other.example.com"):
                await client.send(publish(run, "cors", extra=f"Origin: {origin}\r\n"))
                answer = await client.answer()
                assert answer.status == 200 and answer.headers["vary"] == "Origin"
                allowed = answer.headers.get("access-control-allow-origin")
                assert allowed == (page if origin == page else None)
        finally:
            OPEN.remove(client)
            client.writer.close()
            with contextlib.suppress(ConnectionError):
                await client.writer.wait_closed()


async def test_a_refused_body_still_coming_is_drained_for_a_while_then_cut(gw: Running) -> None:
    """No token, a 100 MB body sent on and on: the answer is read (not a reset), and the
    connection is closed after the linger (10 s), however long the client keeps sending."""
    client = await connect(gw)
    await client.send(
        f"{PUBLISH}Content-Type: application/json\r\nContent-Length: {100 << 20}\r\n\r\n".encode()
    )
    assert (await client.answer()).status == 401
    sent = 0.0  # seconds of sending
    try:
        while sent < 30:  # seconds; the linger is 10
            client.writer.write(b"x" * 65536)
            await client.writer.drain()
            await asyncio.sleep(0.25)
            sent += 0.25
            if client.reader.at_eof():
                break
    except ConnectionError:
        pass
    assert sent < 30, "the connection was never closed"
    metrics = await scrape(gw)
    assert value(metrics, "logs_gateway_http_connections_ended_total", reason="linger_timeout") == 1


async def test_connections_past_the_bound_are_refused_whichever_server_serves_them() -> None:
    async with running_gateway(max_http_connections=3) as gw:
        front = await connect(gw)  # kept open by the front (keep-alive)
        await front.send(publish(gw, "first"))
        assert (await front.answer()).status == 200
        handed = await connect(gw)  # kept open by aiohttp: counted all the same
        await handed.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await handed.answer()).status == 200
        third = await connect(gw)
        await third.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert f"logs_gateway_http_connections {3.0}" in (await third.answer()).body.decode()

        refused = await connect(gw)
        answer = await refused.answer()
        assert answer.status == 503
        assert "too many connections" in answer.json()["error"]["message"]  # type: ignore[index]
        assert await refused.closed()
        assert (await front.answer_to(publish(gw, "still served"))).status == 200

        for client in (handed, third):  # closing any frees its place
            client.writer.close()
        for _ in range(300):
            retry = await connect(gw)
            await retry.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await retry.answer()
            if answer.status == 200:
                break
            assert await retry.closed()
        text = answer.body.decode()
        assert f"logs_gateway_http_connections {2.0}" in text  # `front` and `retry`
        assert 'logs_gateway_http_connections_ended_total{reason="connection_limit"}' in text
