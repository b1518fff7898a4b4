"""Attacks on a running gateway: forged and stolen-looking tokens, rights stretched by
crafted channels, identity headers, injected content and limits pushed past their bounds.
Each attack is refused with its documented status and the gateway serves normally after."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from httpx_sse._decoders import SSEDecoder
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

from gateway.api.http_auth import COOKIE
from gateway.app.credentials import generate_keys
from gateway.core.broker_memory import MemoryBroker
from gateway.core.channels import parse_patterns
from gateway.core.errors import Code
from gateway.core.events import Entry
from gateway.core.ingest import Ingest, Limits
from gateway.core.ratelimit import MAX_IDLE_KEYS, RateLimiter
from gateway.core.tokens import Principal, key_id, load_private_key, load_public_keys, public_jwk
from tests.conftest import AUDIENCE, ISSUER, SECRET, Running, entry, running_gateway

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


# -- tokens ----------------------------------------------------------------------------

ALL_RIGHTS = {"publish": ["logs:>"], "subscribe": ["logs:>"], "admin": True}


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hand_signed(
    header: dict[str, Any], payload: dict[str, Any], key: bytes | None, digest: str = "sha256"
) -> str:
    """A JWT put together by hand: an HMAC with any bytes as the key, or no signature."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    mac = hmac.new(key, signing_input.encode(), digest).digest() if key else b""
    return f"{signing_input}.{b64(mac)}"


def forged_tokens(keys: tuple[Path, Path, str]) -> dict[str, str]:
    """Tokens that claim every right and must each be refused, by name."""
    private_path, jwks_path, kid = keys
    private = load_private_key(private_path)
    attacker = ed25519.Ed25519PrivateKey.generate()
    now = int(time.time())
    good = {"sub": "mallory", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
    good["logs"] = ALL_RIGHTS

    def claims(**changes: Any) -> dict[str, Any]:
        return {k: v for k, v in (good | changes).items() if v is not None}

    def hs(payload: dict[str, Any]) -> str:
        return jwt.encode(payload, SECRET, algorithm="HS256")

    def ed(payload: dict[str, Any], key: Any = private, **header: Any) -> str:
        return jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": kid, **header})

    user = hs(claims(logs={"subscribe": ["logs:etl:workspace123:>"]}))
    public_pem = load_public_keys(jwks_path)[kid].public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    tokens = {
        "alg none": hand_signed({"alg": "none", "typ": "JWT"}, good, None),
        "alg none with a kid": hand_signed({"alg": "none", "kid": kid}, good, None),
        "alg NONE": hand_signed({"alg": "NONE"}, good, None),
        "HS256 keyed with the public key PEM": hand_signed(
            {"alg": "HS256", "kid": kid}, good, public_pem
        ),
        "HS256 keyed with the JWKS file": hand_signed(
            {"alg": "HS256", "kid": kid}, good, jwks_path.read_bytes()
        ),
        "HS512 with the real secret": hand_signed(
            {"alg": "HS512"}, good, SECRET.encode(), "sha512"
        ),
        "unknown kid": ed(good, kid="no-such-key"),
        "no kid": jwt.encode(good, private, algorithm="EdDSA"),
        "another key under the right kid": ed(good, attacker),
        "RS256 claimed for the EdDSA kid": hand_signed({"alg": "RS256", "kid": kid}, good, b"x"),
        "key embedded in the header": ed(
            good, attacker, jwk=public_jwk(attacker.public_key()), kid=key_id(attacker.public_key())
        ),
        "key URL in the header": ed(good, attacker, jku="http://127.0.0.1:1/jwks.json"),
        "expired": hs(claims(iat=now - 7200, exp=now - 3600)),
        "issued in the future": hs(claims(iat=now + 3600, exp=now + 7200)),
        "not before the future": hs(claims(nbf=now + 3600)),
        "wrong issuer": hs(claims(iss="someone-else")),
        "wrong audience": hs(claims(aud="another-service")),
        "audience list without ours": hs(claims(aud=["a", "b"])),
        "exp as text": hs(claims(exp=str(now + 600))),
        "empty subject": hs(claims(sub="")),
        "numeric subject": hs(claims(sub=42)),
        "rights as a list": hs(claims(logs=["logs:>"])),
        "subscribe as a string": hs(claims(logs={"subscribe": "logs:>"})),
        "admin as text": hs(claims(logs={"admin": "true"})),
        "a pattern that is no pattern": hs(claims(logs={"subscribe": ["logs:>:x"]})),
        "rights null": hs(claims(logs=None) | {"logs": None}),
        "signature stripped": hs(good).rsplit(".", 1)[0] + ".",
        "another token's signature": hs(good).rsplit(".", 1)[0] + "." + user.rsplit(".", 1)[1],
        "rights raised in a signed token": user.split(".")[0]
        + "."
        + b64(good)
        + "."
        + user.split(".")[2],
        "two parts": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0",
        "not base64": "@@@.###.$$$",
        "8 KiB of junk": "e" * 8000,
    }
    tokens |= {f"no {name}": hs(claims(**{name: None})) for name in ("sub", "exp", "iat", "iss")}
    tokens["no aud"] = hs(claims(aud=None))
    return tokens


async def verdicts(run: Running, token: str) -> dict[str, str]:
    """What each entry point answers `token`: HTTP statuses and gRPC status names."""
    out: dict[str, str] = {}
    stream = f"/api/logs/stream?channels={ETL}"
    async with httpx.AsyncClient(base_url=run.http, timeout=10) as client:
        for name, headers in (
            ("sse", run.headers(token)),
            ("sse cookie", {"Cookie": f"{COOKIE}={token}"}),
        ):
            async with client.stream("GET", stream, headers=headers) as response:
                out[name] = str(response.status_code)
        body = {"channel": ETL, "message": "forged"}
        publish = await client.post("/api/logs/publish", json=body, headers=run.headers(token))
        out["publish"] = str(publish.status_code)
        stats = await client.get("/admin/logs/stats", headers=run.headers(token))
        out["admin"] = str(stats.status_code)
    out["grpc publish"] = await grpc_verdict(run.publish(token, [[entry(ETL, "forged")]]))
    out["grpc subscribe"] = await grpc_verdict(grpc_subscribe(run, token, [ETL]))
    return out


async def grpc_verdict(call: Awaitable[object]) -> str:
    try:
        await call
    except grpc.aio.AioRpcError as e:
        return str(e.code().name)
    return "OK"


async def grpc_subscribe(run: Running, token: str, channels: list[str]) -> None:
    """Open a gRPC subscription: raises its refusal, or returns once it has stayed open
    for a moment (a subscription sends nothing before the first entry)."""
    async with grpc.aio.insecure_channel(run.grpc_target) as channel:
        call = pb_grpc.LogStreamStub(channel).Subscribe(
            pb.SubscribeRequest(channels=channels), metadata=[("authorization", f"Bearer {token}")]
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.read(), 1.0)
        call.cancel()


REFUSED = {
    "sse": "401",
    "sse cookie": "401",
    "publish": "401",
    "admin": "401",
    "grpc publish": "UNAUTHENTICATED",
    "grpc subscribe": "UNAUTHENTICATED",
}


async def test_every_forged_token_is_refused_everywhere(tmp_path: Path) -> None:
    keys = generate_keys(tmp_path)
    async with running_gateway(jwt_public_keys=str(keys[1])) as gw:
        tokens = forged_tokens(keys)
        results = {name: await verdicts(gw, token) for name, token in tokens.items()}
        accepted = {name: v for name, v in results.items() if v != REFUSED}
        assert accepted == {}, f"{len(accepted)} of {len(tokens)} forged tokens got in"
        assert await verdicts(gw, gw.token(**ALL_RIGHTS)) == {
            "sse": "200",
            "sse cookie": "200",
            "publish": "200",
            "admin": "200",
            "grpc publish": "OK",
            "grpc subscribe": "OK",
        }


async def test_a_token_past_the_size_limit_is_always_unauthenticated_on_grpc(gw: Running) -> None:
    """gRPC refused metadata between 8 and 16 KiB at random (RESOURCE_EXHAUSTED); every
    token must reach the verifier, which answers each the same way."""
    valid = gw.token(publish=[ETL], extra={"pad": "x" * 5000})  # about 7 KiB
    junk = "e" * 12_000
    for i in range(20):
        await gw.publish(valid, [[entry(ETL, "large but valid")]], producer=f"large{i}")
        assert await grpc_verdict(gw.publish(junk, [[entry(ETL, "x")]])) == "UNAUTHENTICATED"
