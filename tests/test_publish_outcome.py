"""A publish answer never lies about storage, and a resend under the same key stores once.

Redis is made slow for real (DEBUG SLEEP from another client, as a long script holds it):
the gateway's own timeout fires while Redis still holds the command and stores it later.
Such a publish is answered "outcome unknown" (HTTP 504 `outcome_unknown`, gRPC
DEADLINE_EXCEEDED), never 503 "stored nothing"; a resend with the same Idempotency-Key (or
producer sequence, through the SDK) then stores nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from logs_gateway import Publisher
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import TimeoutError as RedisTimeout

from gateway.core.channels import parse_pattern
from tests.broker_reads import tail
from tests.conftest import Running, entry, running_gateway
from tests.redis_server import RedisServer, running_redis

CH = "logs:etl:idem:wf1"
SLEEP = 5  # seconds Redis sleeps: past the gateway's 2 s timeout, with room to spare
POSTS = 40  # concurrent POSTs while it sleeps: more than the gateway's 32 Redis connections
PUBLISH = "/api/logs/publish"


async def stored(run: Running) -> Counter[str]:
    """Each message in the channel's history, with how many times it is there."""
    assert run.gateway is not None
    events = await tail(run.gateway.broker, [parse_pattern(CH)], 1000)
    return Counter(orjson.loads(e.data)["message"] for e in events)


async def post(
    client: httpx.AsyncClient, run: Running, token: str, message: str, key: str | None
) -> httpx.Response:
    headers = run.headers(token) | ({"Idempotency-Key": key} if key else {})
    doc = {"channel": CH, "message": message}
    return await client.post(run.http + PUBLISH, json=doc, headers=headers)


@contextlib.asynccontextmanager
async def redis_asleep(redis: RedisServer) -> AsyncIterator[None]:
    """Redis busy for SLEEP seconds from when this enters; on exit, awake again."""
    once = Retry(NoBackoff(), 0)  # never sent twice
    sleeper = Redis(port=redis.port, socket_timeout=SLEEP + 30, retry=once)
    probe = Redis(port=redis.port, socket_timeout=0.3, retry=once)
    try:
        await probe.ping()  # connected before Redis sleeps: the connect has no timeout
        sleep = sleeper.execute_command("DEBUG", "SLEEP", SLEEP)  # type: ignore[no-untyped-call]
        sleeping = asyncio.ensure_future(sleep)
        while True:  # asleep once another client's PING goes unanswered
            try:
                await probe.ping()
            except RedisTimeout:
                break
        yield
        await sleeping
    finally:
        await sleeper.aclose()
        await probe.aclose()


async def test_a_publish_redis_stores_late_is_never_answered_stored_nothing(
    tmp_path: Path,
) -> None:
    with running_redis(tmp_path) as redis:
        async with (
            running_gateway(broker=redis.url) as run,
            httpx.AsyncClient(timeout=30) as client,
        ):
            token = run.token("svc", publish=[CH])
            assert (await post(client, run, token, "warm", None)).status_code == 200
            async with redis_asleep(redis):
                answers = await asyncio.gather(
                    *(post(client, run, token, f"m{i}", f"k{i}") for i in range(POSTS))
                )
            held = await stored(run)
            by_status: dict[int, list[str]] = {}
            for i, answer in enumerate(answers):
                by_status.setdefault(answer.status_code, []).append(f"m{i}")
            assert set(by_status) <= {200, 503, 504}
            # The timeout fired while Redis held commands it ran later: their answers said
            # they might be stored (most are); none answered "stored nothing" was stored.
            assert not [m for m in by_status.get(503, []) if held[m]]
            assert by_status.get(504), by_status
            assert any(held[m] for m in by_status[504])
            unknown = next(a for a in answers if a.status_code == 504).json()["error"]
            assert unknown["code"] == "outcome_unknown"
            assert "Idempotency-Key" in unknown["message"]
            # Resending every unanswered one under its key stores each exactly once.
            for i, answer in enumerate(answers):
                if answer.status_code != 200:
                    again = await post(client, run, token, f"m{i}", f"k{i}")
                    assert again.status_code == 200
                    replayed = again.headers.get("Idempotent-Replayed") == "true"
                    assert replayed == held[f"m{i}"] and (not replayed or answer.status_code == 504)
            assert await stored(run) == Counter(["warm", *(f"m{i}" for i in range(POSTS))])


async def test_the_sdk_resends_a_batch_of_unknown_outcome_and_it_is_stored_once(
    tmp_path: Path,
) -> None:
    with running_redis(tmp_path) as redis:
        async with running_gateway(broker=redis.url) as run:
            async with Publisher(run.token("svc", publish=[CH]), run.grpc_target) as pub:
                await pub.publish(CH, "warm")
                await pub.flush(timeout=10)
                async with redis_asleep(redis):
                    await pub.publish(CH, "late")
                    await pub.flush(timeout=30)
                stats = pub.stats
            # The stream ended DEADLINE_EXCEEDED and the batch was resent: acknowledged again
            # if Redis had stored the first one (as it nearly always has), stored once either way.
            assert stats.reconnects >= 1
            assert stats.duplicates <= 1
            assert await stored(run) == Counter(["warm", "late"])


@pytest.fixture(params=["memory", "redis"])
async def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    with contextlib.ExitStack() as stack:
        broker = "memory"
        if request.param == "redis":
            broker = stack.enter_context(running_redis(tmp_path)).url
        async with running_gateway(broker=broker) as run:
            yield run


async def test_a_resend_with_the_same_key_stores_nothing_twice(gateway: Running) -> None:
    run = gateway
    token = run.token("svc", publish=[CH])
    async with httpx.AsyncClient(timeout=10) as client:
        first = await post(client, run, token, "one", "order-17")
        again = await post(client, run, token, "one", '"order-17"')  # the draft's quoted form
        assert (first.status_code, again.status_code) == (200, 200)
        assert again.json() == first.json()
        assert "Idempotent-Replayed" not in first.headers
        assert again.headers["Idempotent-Replayed"] == "true"
        # Another body under the same key is another request; another tenant's key is its own.
        other = await post(client, run, token, "two", "order-17")
        tenant = await post(client, run, run.token("other", publish=[CH]), "one", "order-17")
        assert other.headers.get("Idempotent-Replayed") is None
        assert tenant.headers.get("Idempotent-Replayed") is None
        # A batch, resent.
        batch = {"entries": [{"channel": CH, "message": "b1"}, {"channel": "bad", "message": "x"}]}
        headers = run.headers(token) | {"Idempotency-Key": "batch-1"}
        answers = [await client.post(run.http + PUBLISH, json=batch, headers=headers) for _ in "ab"]
        assert answers[0].json() == answers[1].json()
        assert answers[0].json()["results"][1]["error"]["code"] == "invalid_argument"
        assert await stored(run) == Counter({"one": 2, "two": 1, "b1": 1})


@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "é".encode(), '"unclosed', "a\tb"])
async def test_a_bad_key_is_refused_with_a_message_naming_it(gw: Running, key: str | bytes) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await post(client, gw, gw.token("svc", publish=[CH]), "m", None)
        assert answer.status_code == 200
        token = gw.token("svc", publish=[CH])
        headers = {
            b"Idempotency-Key": key if isinstance(key, bytes) else key.encode(),
            b"Authorization": f"Bearer {token}".encode(),
        }
        refused = await client.post(
            gw.http + PUBLISH, json={"channel": CH, "message": "bad"}, headers=headers
        )
    assert refused.status_code == 400
    assert "Idempotency-Key must be 1-128 characters" in refused.json()["error"]["message"]
    assert await stored(gw) == Counter({"m": 1})


async def test_an_otlp_export_resent_with_its_key_is_stored_once(gateway: Running) -> None:
    run = gateway
    record = {"body": {"stringValue": "otlp one"}, "attributes": [_channel()]}
    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
    headers = run.headers(run.token("svc", publish=[CH])) | {"Idempotency-Key": "export-1"}
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(3):
            answer = await client.post(run.http + "/v1/logs", json=doc, headers=headers)
            assert answer.status_code == 200
    assert await stored(run) == Counter({"otlp one": 1})


def _channel() -> dict[str, object]:
    return {"key": "logs_gateway.channel", "value": {"stringValue": CH}}


async def test_two_tenants_with_one_producer_id_each_store_their_own(gw: Running) -> None:
    """A producer key is the token subject's: another tenant's batch under the same
    (producer_id, sequence) is its own, stored, not answered as a duplicate and dropped."""
    acks = []
    for subject in ("tenant-a", "tenant-b", "tenant-a"):
        token = gw.token(subject, publish=[CH])
        (ack,) = await gw.publish(token, [[entry(CH, subject)]], producer="shared")
        acks.append(ack)
    assert [a.duplicate for a in acks] == [False, False, True]
    assert acks[2].results[0].cursor == acks[0].results[0].cursor
    assert await stored(gw) == Counter({"tenant-a": 1, "tenant-b": 1})
