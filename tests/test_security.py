"""Attacks on a running gateway: forged and stolen-looking tokens, rights stretched by
crafted channels, identity headers, injected content and limits pushed past their bounds.
Each attack is refused with its documented status and the gateway serves normally after."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
import redis
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from httpx_sse._decoders import SSEDecoder
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

from gateway.api.http.auth import COOKIE
from gateway.app.brokers import memory_broker
from gateway.app.credentials import generate_keys
from gateway.core.channels import parse_patterns
from gateway.core.errors import Code, GatewayError
from gateway.core.events import Entry
from gateway.core.ingest import Ingest, Limits
from gateway.core.keys import PrivateKey, key_id, load_private_key, load_public_keys, public_jwk
from gateway.core.ratelimit import MAX_IDLE_KEYS, RateLimiter
from gateway.core.tokens import MAX_TOKEN_BYTES, Principal
from tests.conftest import (
    AUDIENCE,
    ISSUER,
    SECRET,
    Running,
    entry,
    gateway_process,
    make_config,
    running_gateway,
    wait_for,
)
from tests.redis_server import RedisServer
from tests.sse_client import open_stream

ETL = "logs:etl:workspace123:workflow456"
CODE = {c.name: c.value[0] for c in grpc.StatusCode}
STREAM = f"/api/logs/stream?channels={ETL}"
LIMITS = Limits(max_entry_bytes=65536, max_batch_entries=1000, publish_rate=0)


def service(*publish: str) -> Principal:
    return Principal("svc", parse_patterns(list(publish)), (), False, 2e9, "t1")


async def test_an_unencodable_entry_is_refused_alone_and_its_batch_is_not_half_written() -> None:
    broker = memory_broker(make_config())
    ingest = Ingest(broker, LIMITS)
    batch = [Entry(ETL, 1, 9, m, "s", {}) for m in ("first", "lone \ud800 surrogate", "last")]
    batch.append(Entry(ETL, 1, 9, "attr", "s", {"k": "\udfff"}))
    batch.append(Entry(ETL, 1, 9, "big int", "s", {"k": 2**64}))
    outcomes = (await ingest.publish(service(ETL), batch, ("p", 1))).outcomes
    assert [o.code if isinstance(o, GatewayError) else None for o in outcomes] == [
        None,
        Code.INVALID_ARGUMENT,
        None,
        Code.INVALID_ARGUMENT,
        Code.INVALID_ARGUMENT,
    ]
    assert await broker.head() == 2


async def test_remembered_verdicts_answer_as_the_checks_do_and_stay_bounded() -> None:
    """Ingest keeps its verdict per token and channel (Ingest.verdicts): request after
    request, each entry still gets the answer its rights and its channel's name give."""
    ingest = Ingest(memory_broker(make_config()), LIMITS, max_verdicts=16)
    principal = service("logs:etl:*:*")
    channels = [f"logs:etl:ws{n}:run{n}" for n in range(200)]  # a channel per run
    asked = [*channels, "logs:faas:ws1:f", "logs:etl:bad name:x", *channels[:5]] * 2
    for channel in asked:
        (outcome,) = (
            await ingest.publish(principal, [Entry(channel, 1, 9, "m", "s", {})])
        ).outcomes
        if channel.startswith("logs:etl:ws"):
            assert not isinstance(outcome, GatewayError)
        else:
            assert isinstance(outcome, GatewayError)
            expected = Code.PERMISSION_DENIED if "faas" in channel else Code.INVALID_ARGUMENT
            assert outcome.code is expected, outcome
        assert len(ingest.verdicts) <= 16
    wide = [Entry(c, 1, 9, "m", "s", {}) for c in channels[:100]]  # one batch, 100 channels
    outcomes = (await ingest.publish(principal, wide)).outcomes
    assert not any(isinstance(o, GatewayError) for o in outcomes)
    assert len(ingest.verdicts) <= 16


async def test_a_verdict_kept_for_one_token_never_answers_for_another() -> None:
    """Ingest.verdicts is shared by every token: a channel one may publish to stays
    refused to another whose rights do not cover it, in any order of asking."""
    ingest = Ingest(memory_broker(make_config()), LIMITS)
    wide, narrow = service("logs:etl:*:*"), service("logs:etl:ws1:*")
    for principal, allowed in ((wide, True), (narrow, False), (wide, True), (narrow, False)):
        asked = [Entry("logs:etl:ws2:run", 1, 9, "m", "s", {})]
        (outcome,) = (await ingest.publish(principal, asked)).outcomes
        assert isinstance(outcome, GatewayError) is not allowed


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
    forged = entry(ETL, FORGED)
    forged.source = FORGED
    forged.attributes[FORGED].string_value = FORGED
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
        (ack,) = await gw.publish(token, [list(request(2, 1).entries)], first_seq=2)
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

ALL_RIGHTS: dict[str, Any] = {"publish": ["logs:>"], "subscribe": ["logs:>"], "admin": True}


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
        "no kid, signed by another key": jwt.encode(good, attacker, algorithm="EdDSA"),
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
    """Open a gRPC subscription: raises its refusal, or returns once it is open (its first
    event is `ready`)."""
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
ACCEPTED = {
    "sse": "200",
    "sse cookie": "200",
    "publish": "200",
    "admin": "200",
    "grpc publish": "OK",
    "grpc subscribe": "OK",
}


async def test_every_forged_token_is_refused_everywhere(tmp_path: Path) -> None:
    keys = generate_keys(tmp_path)
    async with running_gateway(jwt_public_keys=str(keys[1])) as gw:
        tokens = forged_tokens(keys)
        results = {name: await verdicts(gw, token) for name, token in tokens.items()}
        accepted = {name: v for name, v in results.items() if v != REFUSED}
        assert accepted == {}, f"{len(accepted)} of {len(tokens)} forged tokens got in"
        assert await verdicts(gw, gw.token(**ALL_RIGHTS)) == ACCEPTED


def issued(private: PrivateKey, alg: str, **header: Any) -> str:
    """A token as an ordinary issuer mints it: PyJWT, no `kid` unless given."""
    now = int(time.time())
    claims = {"sub": "issuer", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
    return jwt.encode(claims | {"logs": ALL_RIGHTS}, private, algorithm=alg, headers=header or None)


@pytest.mark.parametrize(
    ("alg", "generate"),
    [
        ("EdDSA", ed25519.Ed25519PrivateKey.generate),
        ("ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
        ("RS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    ],
)
async def test_a_token_without_kid_from_the_one_pem_key_is_accepted_everywhere(
    tmp_path: Path, alg: str, generate: Callable[[], PrivateKey]
) -> None:
    private = generate()
    pem = tmp_path / "issuer.pem"
    pem.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    async with running_gateway(jwt_public_keys=str(pem)) as gw:
        assert await verdicts(gw, issued(private, alg)) == ACCEPTED
        assert await verdicts(gw, issued(generate(), alg)) == REFUSED


async def test_sighup_reloads_the_keys_and_a_removed_key_is_refused_at_once(
    tmp_path: Path,
) -> None:
    old, new = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public_jwk(old.public_key(), "old")]}))
    with gateway_process(env={"LOGS_GATEWAY_JWT_PUBLIC_KEYS": str(jwks)}) as gw:
        token = issued(old, "EdDSA", kid="old")
        assert (await post_entry(gw, token)).status_code == 200  # verified, and remembered
        jwks.write_text(json.dumps({"keys": [public_jwk(new.public_key(), "new")]}))
        assert gw.process is not None
        gw.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while (answer := await post_entry(gw, token)).status_code == 200:
            assert time.monotonic() < deadline, "the old key is still accepted after SIGHUP"
            await asyncio.sleep(0.02)
        assert answer.status_code == 401 and "key id 'old' is unknown" in answer.text
        assert (await post_entry(gw, issued(new, "EdDSA", kid="new"))).status_code == 200
        jwks.write_text("{broken")  # a bad file keeps the keys in use
        gw.process.send_signal(signal.SIGHUP)
        assert gw.output is not None
        await wait_for(lambda: b"token keys not reloaded" in (gw.output / "stderr").read_bytes())
        assert (await post_entry(gw, issued(new, "EdDSA", kid="new"))).status_code == 200


async def test_a_token_past_the_size_limit_is_always_unauthenticated_on_grpc(gw: Running) -> None:
    """gRPC refused metadata between 8 and 16 KiB at random (RESOURCE_EXHAUSTED); every
    token must reach the verifier, which answers each the same way."""
    valid = gw.token(publish=[ETL], extra={"pad": "x" * 5000})  # about 7 KiB
    junk = "e" * 12_000
    for i in range(20):
        await gw.publish(valid, [[entry(ETL, "large but valid")]], producer=f"large{i}")
        assert await grpc_verdict(gw.publish(junk, [[entry(ETL, "x")]])) == "UNAUTHENTICATED"


async def test_a_token_up_to_the_size_limit_reaches_the_verifier_over_http(gw: Running) -> None:
    """aiohttp refused header and cookie values past 8,190 bytes with its own 400: a valid
    token of 8,184-8,192 bytes never got in, and a longer one never got the verifier's 401."""
    pad = next(
        n
        for n in range(5500, 6500)
        if len(gw.token(subscribe=[ETL], extra={"pad": "x" * n})) >= 8184
    )
    near_limit = gw.token(subscribe=[ETL], extra={"pad": "x" * pad})
    assert 8184 <= len(near_limit) <= MAX_TOKEN_BYTES
    async with httpx.AsyncClient(base_url=gw.http, timeout=10) as client:
        for token, status in ((near_limit, 200), ("e" * 12_000, 401)):
            for headers in (gw.headers(token), {"Cookie": f"{COOKIE}={token}"}):
                async with client.stream("GET", STREAM, headers=headers) as response:
                    assert response.status_code == status, (len(token), headers.keys())
                    if status == 401:
                        body = json.loads(await response.aread())
                        assert f"longer than {MAX_TOKEN_BYTES} bytes" in body["error"]["message"]


# -- rights ----------------------------------------------------------------------------

OWN = "logs:etl:workspace123:>"
NEIGHBOUR = "logs:etl:workspace1234:workflow1"
WIDER = [
    "logs:etl:workspace1234:workflow1",
    "logs:etl:workspace1234:>",
    "logs:etl:workspace12:>",
    "logs:etl:*:workflow456",
    "logs:etl:*:>",
    "logs:etl:>",
    "logs:>",
    "logs:*:workspace123:>",
    "logs:faas:workspace123:>",
    "logs:etl:workspace123",
    f"{ETL},logs:>",
    "logs:etl:workspace123:x,logs:etl:workspace1234:x",
]
MALFORMED = [
    "logs:etl:workspace123:>:x",
    "logs:etl:workspace123*:x",
    "logs:etl:workspace123:../workspace1234",
    "logs:etl:workspace123:..%2Fworkspace1234",
    "LOGS:etl:workspace123:x",
    "logs:etl:workspace123:x\x00",
    "logs:etl:workspace123:x y",
    "logs:etl:\uff57orkspace123:x",  # a fullwidth w
    "logs::workspace123:x",
]


@pytest.mark.parametrize("channels", WIDER + MALFORMED)
async def test_a_workspace_token_cannot_widen_itself_through_the_query(
    gw: Running, channels: str
) -> None:
    token = gw.token("alice", subscribe=[OWN])
    async with httpx.AsyncClient(base_url=gw.http, headers=gw.headers(token)) as client:
        response = await client.get("/api/logs/stream", params={"channels": channels})
    grpc_answer = await grpc_verdict(grpc_subscribe(gw, token, channels.split(",")))
    if channels in WIDER:
        assert (response.status_code, grpc_answer) == (403, "PERMISSION_DENIED")
    else:  # malformed: refused as such, or as outside the rights when it still parses
        assert response.status_code in (400, 403), response.text
        assert grpc_answer in ("INVALID_ARGUMENT", "PERMISSION_DENIED")


async def test_a_workspace_token_cannot_write_next_door(gw: Running) -> None:
    token = gw.token("etl", publish=[OWN])
    acks = await gw.publish(token, [[entry(c, "x") for c in (*WIDER[:2], NEIGHBOUR, ETL)]])
    assert [r.code for r in acks[0].results] == [
        CODE["PERMISSION_DENIED"],
        CODE["INVALID_ARGUMENT"],  # a pattern is no channel to publish to
        CODE["PERMISSION_DENIED"],
        0,
    ]
    async with httpx.AsyncClient(base_url=gw.http, headers=gw.headers(token)) as client:
        body = {"channel": NEIGHBOUR, "message": "x"}
        assert (await client.post("/api/logs/publish", json=body)).status_code == 403


async def test_resuming_replays_only_what_the_token_may_read(gw: Running) -> None:
    publisher = gw.token("svc", publish=["logs:>"])
    token = gw.token("alice", subscribe=[OWN])
    async with open_stream(gw.http, OWN, token) as live:
        epoch = (await live.next()).id.split("-")[0]
    await gw.publish(publisher, [[entry(NEIGHBOUR, "secret"), entry(ETL, "mine")]])
    async with open_stream(gw.http, OWN, token, last_event_id=f"{epoch}-0") as stream:
        (event,) = await stream.take(1)
        assert event.data["message"] == "mine"
        with pytest.raises(TimeoutError):
            await stream.next(timeout=0.3)


IDENTITY_HEADERS = {
    "X-User-Id": "admin",
    "X-Workspace-Id": "workspace1234",
    "X-Forwarded-User": "admin",
    "X-Remote-User": "admin",
    "X-Auth-Request-User": "admin",
    "X-Admin": "true",
}


async def test_identity_headers_from_clients_are_ignored(gw: Running) -> None:
    user = gw.token("alice", subscribe=[OWN])
    async with httpx.AsyncClient(base_url=gw.http, headers=IDENTITY_HEADERS) as client:
        anonymous = await client.get("/api/logs/stream", params={"channels": ETL})
        assert anonymous.status_code == 401
        next_door = await client.get(
            "/api/logs/stream", params={"channels": NEIGHBOUR}, headers=gw.headers(user)
        )
        assert next_door.status_code == 403
        stats = await client.get("/admin/logs/stats", headers=gw.headers(user))
        assert stats.status_code == 403
        body = {"channel": NEIGHBOUR, "message": "x"}
        assert (await client.post("/api/logs/publish", json=body)).status_code == 401


# -- the proxy routes ------------------------------------------------------------------

PROXY = "/api/dapadmin/{app}/sse/logs/stream?{query}"
CRAFTED_IDS = [
    "..%2FwsB",
    "../wsB",
    "wsA%2F..%2FwsB",
    "wsA%3A%3E",
    "wsA:>",
    "wsA:*",
    "%2A",
    "*",
    "%3E",
    ">",
    "wsA,wsB",
    "wsA%2Clogs%3A%3E",
    "wsA%253A%253E",
    "wsA%00",
    "wsA%0D%0Aevent:%20x",
    "%20wsA",
    "wsA%20",
    "%EF%BD%97sA",
    "w" * 65,
    "",
]


@pytest.mark.parametrize("crafted", CRAFTED_IDS)
async def test_crafted_ids_on_proxy_routes_reach_no_other_workspace(
    gw: Running, crafted: str
) -> None:
    queries = [("analytics", f"workspace_id={crafted}")]
    for app, second in (("l5-etl", "workflow_id"), ("faas", "function_id")):
        queries.append((app, f"workspace_id={crafted}&{second}=x1"))
        queries.append((app, f"workspace_id=wsA&{second}={crafted}"))
    async with httpx.AsyncClient(base_url=gw.http, headers=wsa_cookie(gw)) as client:
        for app, query in queries:
            response = await client.get(PROXY.format(app=app, query=query))
            assert response.status_code == 400, (app, query, response.text)


def wsa_cookie(gw: Running) -> dict[str, str]:
    """The browser's way in for a user of workspace wsA."""
    token = gw.token("alice", subscribe=["logs:*:wsA", "logs:*:wsA:>"])
    return {"Cookie": f"{COOKIE}={token}"}


@pytest.mark.parametrize(
    "app", ["..%2F..%2Fapi%2Flogs", "l5-etl%2F..%2Ffaas", "L5-ETL", "l5-etl%00", "%2A", "%3E"]
)
async def test_crafted_app_names_are_not_found(gw: Running, app: str) -> None:
    cookie = {"Cookie": f"{COOKIE}={gw.token('alice', subscribe=['logs:>'])}"}
    async with httpx.AsyncClient(base_url=gw.http, headers=cookie) as client:
        response = await client.get(PROXY.format(app=app, query="workspace_id=wsA&workflow_id=w"))
    assert response.status_code == 404


async def test_a_repeated_id_cannot_smuggle_a_second_workspace(gw: Running) -> None:
    """Only one value of an id is read; the channel it names must still be the token's."""
    async with httpx.AsyncClient(base_url=gw.http, headers=wsa_cookie(gw)) as client:
        first_theirs = PROXY.format(app="analytics", query="workspace_id=wsB&workspace_id=wsA")
        assert (await client.get(first_theirs)).status_code == 403
        url = gw.http + PROXY.format(app="analytics", query="workspace_id=wsA&workspace_id=wsB")
        async with client.stream("GET", url) as stream:
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            ready = [await anext(lines) for _ in range(4)]  # retry, id, event, data
            assert '"channels":["logs:analytics:wsA"]' in ready[3]


# -- CORS ------------------------------------------------------------------------------

PAGE = "https://app.example.com"
LOOK_ALIKES = [
    "https://app.example.com.evil.com",
    "https://evilapp.example.com",
    "https://evil.com/https://app.example.com",
    "http://app.example.com",
    "https://app.example.com:8443",
    "https://APP.example.com",
    "https://app.example.com/",
    "null",
    "*",
    "",
]


async def test_an_unlisted_origin_gets_no_credentials() -> None:
    async with running_gateway(cors_origins=PAGE) as gw:
        cookie = {"Cookie": f"{COOKIE}={gw.token(subscribe=[ETL])}"}
        preflight = {"Access-Control-Request-Method": "GET"}
        async with httpx.AsyncClient(base_url=gw.http, headers=cookie) as client:
            for origin in [*LOOK_ALIKES, PAGE]:
                headers = {"Origin": origin}
                async with client.stream("GET", STREAM, headers=headers) as response:
                    assert response.status_code == 200
                    granted = cors_grant(response.headers)
                asked = await client.options("/api/logs/stream", headers=headers | preflight)
                if origin == PAGE:
                    assert granted == cors_grant(asked.headers) == (PAGE, "true")
                else:
                    assert granted == cors_grant(asked.headers) == (None, None), origin
                    assert asked.status_code == 403


def cors_grant(headers: httpx.Headers) -> tuple[str | None, str | None]:
    """The origin a response lets read it, and whether with credentials."""
    origin = headers.get("Access-Control-Allow-Origin")
    return origin, headers.get("Access-Control-Allow-Credentials")


# -- a client that opens connections without end ---------------------------------------


async def open_raw_stream(gw: Running, token: str) -> tuple[int, asyncio.StreamWriter]:
    """A raw SSE request: its status, and the connection (left open)."""
    host, port = gw.http.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"GET {STREAM} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    status = int((await reader.readline()).split()[1])
    return status, writer


async def test_a_connection_flood_is_stopped_at_the_limit_and_others_are_unaffected() -> None:
    async with running_gateway(max_connections_per_token=16) as gw:
        assert gw.gateway is not None
        flooder, other = gw.token("mallory", subscribe=[ETL]), gw.token("alice", subscribe=[ETL])
        publisher = gw.token("svc", publish=[ETL])
        async with open_stream(gw.http, ETL, other) as bystander:
            await bystander.next()
            attempts = [await open_raw_stream(gw, flooder) for _ in range(16)]
            for wave in range(4):
                attempts += await asyncio.gather(*(open_raw_stream(gw, flooder) for _ in range(50)))
                await gw.publish(publisher, [[entry(ETL, f"during wave {wave}")]], f"w{wave}")
                assert (await bystander.next()).data["message"] == f"during wave {wave}"
            statuses = [status for status, _ in attempts]
            assert statuses == [200] * 16 + [429] * 200
            assert gw.gateway.hub.subscriptions == 17
            for _, writer in attempts:
                writer.close()
            await wait_for(lambda: gw.gateway is not None and gw.gateway.hub.subscriptions == 1)
            status, writer = await open_raw_stream(gw, flooder)
            writer.close()
            assert status == 200  # the slots come back


# -- resume points ---------------------------------------------------------------------


def bad_cursors(epoch: str) -> list[str]:
    """Last-Event-ID values no client got from this gateway (or from its present history)."""
    return [
        "garbage",
        "-1",
        f"{epoch}-",
        f"{epoch}--1",
        f"{epoch}-1e5",
        f"{epoch}-0x10",
        f"{epoch.upper()}-1",
        f"{epoch}-{'9' * 20}",
        f"{epoch}-{2**63}",
        f"{epoch}-{2**63 - 1}",
        f"{epoch}-{2**53 + 1}",
        f"{epoch}-999999",
        f"other{epoch}-5",
        f"{epoch}-5:x",
        "a" * 4000,
        "\u00e9-1",
    ]


@pytest.fixture(params=["memory", "redis"])
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory"
    server: RedisServer = request.getfixturevalue("redis_server")
    url = server.url.rsplit("/", 1)[0] + "/13"  # a database of this test's own
    redis.Redis.from_url(url).flushdb()
    return url


async def test_a_bad_resume_point_gets_a_clean_refusal_or_a_fresh_start(broker_url: str) -> None:
    async with running_gateway(broker=broker_url) as gw:
        token = gw.token(subscribe=[OWN])
        await gw.publish(gw.token(publish=[OWN]), [[entry(ETL, "stored")]])
        async with open_stream(gw.http, OWN, token) as live:
            epoch = (await live.next()).id.split("-")[0]
        async with httpx.AsyncClient(base_url=gw.http, headers=gw.headers(token)) as client:
            for cursor in bad_cursors(epoch):
                header = {b"Last-Event-ID": cursor.encode()}
                async with client.stream("GET", STREAM, headers=header) as response:
                    assert response.status_code == 200, cursor
                explicit = await client.get(STREAM, params={"last_event_id": cursor})
                assert explicit.status_code in (200, 400), cursor
        async with open_stream(gw.http, OWN, token) as stream:
            assert (await stream.next()).event == "ready"
            await gw.publish(gw.token(publish=[OWN]), [[entry(ETL, "after")]], "after")
            assert (await stream.next()).data["message"] == "after"


async def test_every_route_that_takes_a_token_is_authenticated_by_http_serve(
    gw: Running,
) -> None:
    """One owner for HTTP authentication: the routes that take a token say so, and only
    http.serve verifies it (no handler reads a header or cookie of its own)."""
    assert gw.gateway is not None
    app = gw.gateway.http_app()
    marked = {
        (route.method, route.resource.canonical): route.handler.token_policy
        for route in app.router.routes()
        if route.resource is not None and hasattr(route.handler, "token_policy")
    }
    assert {key: (p.allow_cookie, p.admin) for key, p in marked.items()} == {
        ("GET", "/api/logs/stream"): (True, False),
        ("GET", "/api/logs/history"): (True, False),
        ("HEAD", "/api/logs/history"): (True, False),
        ("GET", "/api/logs/channels"): (True, False),
        ("HEAD", "/api/logs/channels"): (True, False),
        ("GET", "/api/dapadmin/{app}/sse/logs/stream"): (True, False),
        ("POST", "/api/logs/publish"): (False, False),
        ("POST", "/v1/logs"): (False, False),
        ("GET", "/admin/logs/stats"): (False, True),
        ("HEAD", "/admin/logs/stats"): (False, True),
    }


async def test_a_gateway_with_a_route_outside_http_serve_does_not_start(gw: Running) -> None:
    """A route added past http.serve would skip authentication: start-up refuses it."""
    assert gw.gateway is not None
    app = gw.gateway.http_app()

    async def backdoor(request: web.Request) -> web.Response:
        return web.Response(text="open")

    app.router.add_get("/admin/backdoor", backdoor)
    runner = web.AppRunner(app)
    with pytest.raises(RuntimeError, match="/admin/backdoor is not served through"):
        await runner.setup()
    await runner.cleanup()
