"""Token verification (DESIGN §4): what is accepted, and every way a token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.app import credentials
from gateway.app.credentials import generate_keys
from gateway.core import tokens
from gateway.core.channels import parse_pattern
from gateway.core.errors import Code, GatewayError
from gateway.core.keys import (
    PrivateKey,
    key_id,
    load_private_key,
    load_public_keys,
    public_jwk,
    read_key_file,
)
from gateway.core.tokens import Signer, Verifier
from tests.conftest import AUDIENCE, ISSUER, SECRET, make_config, make_verifier


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "svc",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 60,
        "logs": {"publish": ["logs:etl:>"], "subscribe": [], "admin": False},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    return generate_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def verifier(keys: tuple[Path, Path, str]) -> Verifier:
    _, jwks, _ = keys
    return make_verifier(public_keys=load_public_keys(jwks))


def hs(payload: dict[str, Any], secret: str | bytes = SECRET, **headers: Any) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", headers=headers or None)


def refused(verifier: Verifier, token: str | None) -> GatewayError:
    with pytest.raises(GatewayError) as err:
        verifier.verify(token)
    assert err.value.code is Code.UNAUTHENTICATED
    return err.value


def test_hs256_token_gives_principal(verifier: Verifier) -> None:
    principal = verifier.verify(hs(claims()))
    assert principal.subject == "svc"
    principal.check_publish(parse_pattern("logs:etl:w:f"))
    with pytest.raises(GatewayError) as err:
        principal.check_subscribe(parse_pattern("logs:etl:w:f"))
    assert err.value.code is Code.PERMISSION_DENIED


def test_eddsa_token_chosen_by_kid(verifier: Verifier, keys: tuple[Path, Path, str]) -> None:
    private, _, kid = keys
    signer = Signer(
        issuer=ISSUER, audience=AUDIENCE, private_key=load_private_key(private), kid=kid
    )
    assert verifier.verify(signer.mint("alice", subscribe=["logs:>"])).subject == "alice"
    assert jwt.get_unverified_header(signer.mint("x"))["alg"] == "EdDSA"


def test_alg_none_refused(verifier: Verifier) -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=").decode()
    assert refused(verifier, f"{header}.{body}.").reason == "bad_algorithm"


def test_hs256_signed_with_public_key_refused(
    verifier: Verifier, keys: tuple[Path, Path, str]
) -> None:
    private, _, kid = keys
    public_pem = (
        load_private_key(private)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    # PyJWT itself refuses to HMAC with a PEM key, so forge the signature by hand.
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "kid": kid}).encode())
    signing_input = f"{header}.{b64(json.dumps(claims()).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert refused(verifier, f"{signing_input}.{b64(signature)}").reason == "bad_signature"


def test_hs256_refused_when_only_public_keys(keys: tuple[Path, Path, str]) -> None:
    only_keys = make_verifier(None, load_public_keys(keys[1]))
    assert refused(only_keys, hs(claims())).reason == "bad_algorithm"


def test_wrong_secret_refused(verifier: Verifier) -> None:
    assert refused(verifier, hs(claims(), "another-secret-" + "y" * 40)).reason == "bad_signature"


def test_unknown_kid_refused(verifier: Verifier) -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    token = jwt.encode(
        claims(), other, algorithm="EdDSA", headers={"kid": key_id(other.public_key())}
    )
    assert refused(verifier, token).reason == "unknown_kid"


def test_key_of_right_kid_but_other_signer_refused(
    verifier: Verifier, keys: tuple[Path, Path, str]
) -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    token = jwt.encode(claims(), other, algorithm="EdDSA", headers={"kid": keys[2]})
    assert refused(verifier, token).reason == "bad_signature"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"iat": int(time.time()) + 3600}, "not_yet_valid"),
        ({"iss": "someone-else"}, "bad_issuer"),
        ({"aud": "another-service"}, "bad_audience"),
        ({"sub": None}, "missing_claim"),
        ({"exp": None}, "missing_claim"),
        ({"iat": None}, "missing_claim"),
        ({"iss": None}, "missing_claim"),
        ({"aud": None}, "missing_claim"),
        ({"logs": ["logs:>"]}, "bad_claims"),
        ({"logs": {"publish": "logs:>"}}, "bad_claims"),
        ({"logs": {"publish": ["logs:>:x"]}}, "bad_claims"),
        ({"logs": {"admin": "yes"}}, "bad_claims"),
        ({"sub": 42}, "malformed"),
    ],
)
def test_bad_claims_refused(verifier: Verifier, overrides: dict[str, Any], reason: str) -> None:
    assert refused(verifier, hs(claims(**overrides))).reason == reason


@pytest.mark.parametrize("token", [None, "", "not-a-jwt", "a.b.c", "x" * 10_000])
def test_garbage_refused(verifier: Verifier, token: str | None) -> None:
    refused(verifier, token)


def test_pem_public_key_file(tmp_path: Path, keys: tuple[Path, Path, str]) -> None:
    private, _, kid = keys
    pem = tmp_path / "pub.pem"
    pem.write_bytes(
        load_private_key(private)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert list(load_public_keys(pem)) == [kid]


# -- keys as issuers publish them --------------------------------------------------------

ALGORITHMS: dict[str, Callable[[], PrivateKey]] = {
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
}


def pem_file(path: Path, key: PrivateKey) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def jwks_file(path: Path, *keys: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"keys": list(keys)}))
    return path


def only_keys(path: Path, **options: Any) -> Verifier:
    return make_verifier(None, load_public_keys(path), **options)


@pytest.mark.parametrize("alg", sorted(ALGORITHMS))
def test_a_token_without_kid_is_verified_by_the_one_pem_key(tmp_path: Path, alg: str) -> None:
    private = ALGORITHMS[alg]()
    verifier = only_keys(pem_file(tmp_path / "key.pem", private))
    assert verifier.verify(jwt.encode(claims(), private, algorithm=alg)).subject == "svc"
    # The PEM key's kid is its RFC 7638 thumbprint; a token naming it works too.
    kid = key_id(private.public_key())
    assert verifier.verify(jwt.encode(claims(), private, algorithm=alg, headers={"kid": kid}))
    other = ALGORITHMS[alg]()
    forged = jwt.encode(claims(), other, algorithm=alg)
    assert refused(verifier, forged).reason == "bad_signature"


def test_a_token_without_kid_is_refused_when_several_keys_could_verify_it(tmp_path: Path) -> None:
    first, second = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    path = jwks_file(
        tmp_path / "jwks.json",
        public_jwk(first.public_key(), "a"),
        public_jwk(second.public_key(), "b"),
    )
    verifier = only_keys(path)
    error = refused(verifier, jwt.encode(claims(), first, algorithm="EdDSA"))
    assert (error.reason, error.message) == (
        "missing_kid",
        "token has no key id and 2 EdDSA keys could verify it",
    )
    token = jwt.encode(claims(), second, algorithm="EdDSA", headers={"kid": "b"})
    assert verifier.verify(token).subject == "svc"


def rsa_jwk(**fields: Any) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), **fields}


def test_a_jwks_keeps_its_signing_keys_and_skips_the_others_naming_each(tmp_path: Path) -> None:
    signing = ed25519.Ed25519PrivateKey.generate()
    p384 = ec.generate_private_key(ec.SECP384R1())
    private_jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(signing))
    path = jwks_file(
        tmp_path / "jwks.json",
        rsa_jwk(kid="enc-1", use="enc", alg="RSA-OAEP"),
        rsa_jwk(kid="ps-1", use="sig", alg="PS256"),
        {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(p384.public_key())), "kid": "p384"},
        {"kty": "oct", "k": "c2VjcmV0", "alg": "HS256", "kid": "hmac"},
        {**private_jwk, "kid": "leaked"},
        {"kty": "unknown", "kid": "odd"},
        public_jwk(signing.public_key(), "good"),
        rsa_jwk(),  # no kid, no use, no alg: a signing key named by its thumbprint
    )
    found = read_key_file(path)
    assert len(found.keys) == 2 and "good" in found.keys
    assert [s.split(":")[0] for s in found.skipped] == [
        "key 'enc-1'",
        "key 'ps-1'",
        "key 'p384'",
        "key 'hmac'",
        "key 'leaked'",
        "key 'odd'",
    ]
    assert "not a signing key (use 'enc')" in found.skipped[0]
    assert "algorithm 'PS256' is not accepted" in found.skipped[1]
    assert "P-256" in found.skipped[2]
    token = jwt.encode(claims(), signing, algorithm="EdDSA", headers={"kid": "good"})
    assert only_keys(path).verify(token).subject == "svc"


def test_a_jwks_without_a_usable_key_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = jwks_file(tmp_path / "jwks.json", rsa_jwk(kid="enc-1", use="enc", alg="RSA-OAEP"))
    with pytest.raises(ValueError, match="no usable verification key") as err:
        read_key_file(path)
    assert str(path) in str(err.value) and "enc-1" in str(err.value)


def test_the_skipped_keys_are_logged_once_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    signing = ed25519.Ed25519PrivateKey.generate()
    path = jwks_file(
        tmp_path / "jwks.json",
        rsa_jwk(kid="enc-1", use="enc", alg="RSA-OAEP"),
        public_jwk(signing.public_key(), "good"),
    )
    config = replace(make_config(), jwt_public_keys=str(path))
    with caplog.at_level(logging.WARNING, logger="logs_gateway"):
        credentials.trust(config)
    [record] = [r for r in caplog.records if r.name == "logs_gateway"]
    assert record.getMessage() == "verification keys skipped"
    assert record.__dict__["file"] == str(path)
    assert [s.split(":")[0] for s in record.__dict__["skipped"]] == ["key 'enc-1'"]


# -- the verified-token cache and the leeway -------------------------------------------


class Clock:
    """The verifier's wall clock, moved by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(tokens, "time", fake)
    return fake


def same_refusal(verifier: Verifier, other: Verifier, token: str) -> None:
    mine, theirs = refused(verifier, token), refused(other, token)
    assert (mine.code, mine.message, mine.reason) == (theirs.code, theirs.message, theirs.reason)


def test_a_remembered_token_expires_at_the_same_instant_as_a_fresh_one(
    clock: Clock, verifier: Verifier
) -> None:
    exp = int(clock.now) + 60
    token = hs(claims(exp=exp))
    principal = verifier.verify(token)
    assert principal.expires_at == exp + 5.0  # the leeway
    assert verifier.verify(token) is principal and verifier.cache_hits == 1
    clock.now = principal.expires_at - 0.001
    assert verifier.verify(token) is principal
    clock.now = principal.expires_at
    fresh = make_verifier()
    same_refusal(verifier, fresh, token)
    assert refused(verifier, token).reason == "expired" and verifier.cached == 0


def test_a_token_inside_the_leeway_is_accepted_until_exp_plus_leeway(
    clock: Clock, verifier: Verifier
) -> None:
    exp = int(clock.now) - 2
    token = hs(claims(iat=exp - 60, exp=exp))
    assert verifier.verify(token).expires_at == exp + 5.0
    verifier.use_keys(secret=SECRET.encode(), public_keys={})  # forget it: check afresh
    clock.now = exp + 5.0
    assert refused(verifier, token).reason == "expired"


def test_new_keys_drop_remembered_tokens(tmp_path: Path) -> None:
    old, new = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    verifier = only_keys(pem_file(tmp_path / "old.pem", old))
    without_kid = jwt.encode(claims(), old, algorithm="EdDSA")
    with_kid = jwt.encode(
        claims(), old, algorithm="EdDSA", headers={"kid": key_id(old.public_key())}
    )
    assert verifier.verify(without_kid) and verifier.verify(with_kid) and verifier.cached == 2
    new_keys = load_public_keys(pem_file(tmp_path / "new.pem", new))
    verifier.use_keys(secret=None, public_keys=new_keys)
    assert verifier.cached == 0
    fresh = only_keys(tmp_path / "new.pem")
    for token in (without_kid, with_kid):
        same_refusal(verifier, fresh, token)
    assert refused(verifier, with_kid).reason == "unknown_kid"
    assert refused(verifier, without_kid).reason == "bad_signature"


def test_refused_tokens_are_not_remembered_and_get_the_same_answer_each_time(
    verifier: Verifier,
) -> None:
    bad = [
        hs(claims(exp=int(time.time()) - 120)),
        hs(claims(), "another-secret-" + "y" * 40),
        hs(claims(aud="another-service")),
        hs(claims(logs={"admin": "yes"})),
        "not-a-jwt",
    ]
    for token in bad:
        first = refused(verifier, token)
        for _ in range(3):
            again = refused(verifier, token)
            assert (again.message, again.reason) == (first.message, first.reason)
    assert verifier.cached == 0 and verifier.cache_hits == 0


def test_the_cache_is_bounded_and_can_be_turned_off() -> None:
    def verifier(entries: int) -> Verifier:
        return make_verifier(cache_entries=entries)

    minted = [hs(claims(sub=f"svc{i}")) for i in range(5)]
    bounded, off = verifier(3), verifier(0)
    for token in minted * 2:
        assert bounded.verify(token).subject == off.verify(token).subject
    assert bounded.cached == 3
    assert (off.cached, off.cache_hits) == (0, 0)
