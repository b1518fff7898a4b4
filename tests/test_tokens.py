"""Token verification (DESIGN §4): what is accepted, and every way a token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.app.credentials import generate_keys
from gateway.core.channels import parse_pattern
from gateway.core.errors import Code, GatewayError
from gateway.core.tokens import Signer, Verifier, key_id, load_private_key, load_public_keys
from tests.conftest import AUDIENCE, ISSUER, SECRET


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
    return Verifier(
        secret=SECRET.encode(), public_keys=load_public_keys(jwks), issuer=ISSUER, audience=AUDIENCE
    )


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
    only_keys = Verifier(
        secret=None, public_keys=load_public_keys(keys[1]), issuer=ISSUER, audience=AUDIENCE
    )
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
