"""Attacks on a running gateway: forged and stolen-looking tokens, rights stretched by
crafted channels, identity headers, injected content and limits pushed past their bounds.
Each attack is refused with its documented status and the gateway serves normally after."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from httpx_sse._decoders import SSEDecoder
from logs_gateway.v1 import logs_pb2 as pb

from gateway.core.broker_memory import MemoryBroker
from gateway.core.channels import parse_patterns
from gateway.core.errors import Code
from gateway.core.events import Entry
from gateway.core.ingest import Ingest, Limits
from gateway.core.ratelimit import MAX_IDLE_KEYS, RateLimiter
from gateway.core.tokens import Principal
from tests.conftest import Running, entry, running_gateway

ETL = "logs:etl:workspace123:workflow456"
CODE = {c.name: c.value[0] for c in grpc.StatusCode}


def service(*publish: str) -> Principal:
    return Principal("svc", parse_patterns(list(publish)), (), False, 2e9, "t1")


async def test_an_unencodable_entry_is_refused_alone_and_its_batch_is_not_half_written() -> None:
    broker = MemoryBroker()
    ingest = Ingest(broker, Limits())
    batch = [Entry(ETL, 1, 9, m, "s", {}) for m in ("first", "lone \ud800 surrogate", "last")]
    batch.append(Entry(ETL, 1, 9, "attr", "s", {"k": "\udfff"}))
    batch.append(Entry(ETL, 1, 9, "big int", "s", {"k": 2**64}))
    outcomes = (await ingest.publish(service(ETL), batch, ("p", 1))).outcomes
    assert [o.error.code if o.error else None for o in outcomes] == [
        None,
        Code.INVALID_ARGUMENT,
        None,
        Code.INVALID_ARGUMENT,
        Code.INVALID_ARGUMENT,
    ]
    assert await broker.head() == 2


async def test_the_source_counts_toward_the_entry_size(gw: Running) -> None:
    token = gw.token(publish=[ETL])
    big_source = entry(ETL, "small message")
    big_source.source = "s" * 70_000
    acks = await gw.publish(token, [[big_source, entry(ETL, "fine")]])
    assert [r.code for r in acks[0].results] == [CODE["RESOURCE_EXHAUSTED"], 0]
    assert "65536" in acks[0].results[0].message


FORGED = "\u2028\u2028event: forged\u2028data: {}\u2028id: 1\u2028\u2028\x85\r\n\r\nevent: x\n\n\0"


async def test_no_content_forges_an_event_even_for_a_client_splitting_like_splitlines(
    gw: Running,
) -> None:
    """httpx's own `aiter_lines` (as old httpx-sse and many hand-made clients use) splits on
    U+2028, U+0085 and others; the stream must hold one event per entry for it too."""
    sub, pub = gw.token(subscribe=[ETL]), gw.token(publish=[ETL])
    forged = entry(ETL, FORGED, **{FORGED: FORGED})
    forged.source = FORGED
    async with httpx.AsyncClient(timeout=10) as client:
        url = f"{gw.http}/api/logs/stream?channels={ETL}"
        async with client.stream("GET", url, headers=gw.headers(sub)) as response:
            lines = response.aiter_lines()
            assert await next_event(lines) == ("ready", None)
            await gw.publish(pub, [[forged, entry(ETL, "after")]])
            kind, doc = await next_event(lines)
            assert kind == "log" and doc is not None
            assert (doc["message"], doc["source"], doc["attributes"]) == (
                FORGED,
                FORGED,
                {FORGED: FORGED},
            )
            kind, doc = await next_event(lines)
            assert kind == "log" and doc is not None and doc["message"] == "after"


async def next_event(lines: AsyncIterator[str]) -> tuple[str, Any]:
    """The next event (type, parsed data) read through httpx_sse's decoder from `lines`."""
    decoder = SSEDecoder()
    async for line in lines:
        if (event := decoder.decode(line)) is not None:
            return event.event, json.loads(event.data) if event.event == "log" else None
    raise AssertionError("the stream ended")


# -- limits ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_admits_a_burst_then_refuses_with_the_time_to_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(100, clock=clock)
    assert limiter.charge("a", 150) == 0.0  # a batch larger than the burst still passes
    assert limiter.charge("a", 1) == pytest.approx(0.51)  # 50 in debt, plus one entry
    assert limiter.charge("b", 100) == 0.0  # another service has its own bucket
    clock.now += 0.51
    assert limiter.charge("a", 1) == 0.0
    clock.now += 3600
    assert limiter.charge("a", 100) == 0.0  # credit never grows past one second's worth
    assert limiter.charge("a", 1) > 0


def test_rate_limiter_forgets_idle_services() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock)
    for i in range(MAX_IDLE_KEYS * 3):
        limiter.charge(f"svc{i}", 1)
        clock.now += 1.0  # each bucket is full again by the next call
    assert len(limiter._buckets) < MAX_IDLE_KEYS


async def test_publish_rate_is_limited_per_token_with_a_retry_hint() -> None:
    async with running_gateway(publish_rate=20) as gw:
        token = gw.token("svc-a", publish=[ETL])
        stub, metadata = gw.ingest(token)
        call = stub.Publish(metadata=metadata)
        await call.write(request(1, 40))  # 20 entries in debt: a second to wait
        assert all(r.code == 0 for r in (await call.read()).results)
        await call.write(request(2, 1))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        hint = dict(err.value.trailing_metadata() or ())["retry-after-ms"]
        assert 0 < int(hint) <= 1050 and f"retry after {hint} ms" in (err.value.details() or "")
        over_http = await post_entry(gw, token)
        assert over_http.status_code == 429 and int(over_http.headers["Retry-After"]) >= 1
        assert (await post_entry(gw, gw.token("svc-b", publish=[ETL]))).status_code == 200
        await asyncio.sleep(int(hint) / 1000)
        (ack,) = await gw.publish(token, [request(2, 1).entries], first_seq=2)
        assert not ack.duplicate and ack.results[0].code == 0


def request(sequence: int, entries: int) -> pb.PublishRequest:
    batch = [entry(ETL, f"m{sequence}-{i}") for i in range(entries)]
    return pb.PublishRequest(producer_id="rate", sequence=sequence, entries=batch)


async def post_entry(gw: Running, token: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        body = {"channel": ETL, "message": "over http"}
        return await client.post(
            f"{gw.http}/api/logs/publish", json=body, headers=gw.headers(token)
        )
