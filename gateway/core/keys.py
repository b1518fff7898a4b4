"""Verification keys: reading them (PEM and JWKS, from a file or a provider's answer), their
`kid`s, and choosing the one key that may check a token.

Algorithms are an explicit allow-list, each bound to its own key: an HS256 token is checked
only against the shared secret, an asymmetric one only against a public key of its
algorithm (the one its `kid` names, or the only one), so a public key can never be used as
a secret.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.core.errors import Code, GatewayError, unauthenticated

ASYMMETRIC_ALGORITHMS = {
    ed25519.Ed25519PublicKey: "EdDSA",
    ec.EllipticCurvePublicKey: "ES256",
    rsa.RSAPublicKey: "RS256",
}
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True, slots=True)
class VerifyKey:
    algorithm: str
    key: PublicKey | bytes


class KeySet:
    """The keys one issuer signs with: public keys by `kid`, and an HS256 secret (only the
    gateway's own issuer has one)."""

    def __init__(self, public_keys: Mapping[str, PublicKey], secret: bytes | None = None) -> None:
        self.secret = secret
        self.by_kid = {kid: VerifyKey(algorithm_for(k), k) for kid, k in public_keys.items()}
        self._by_algorithm: dict[str, list[VerifyKey]] = {}
        for key in self.by_kid.values():
            self._by_algorithm.setdefault(key.algorithm, []).append(key)
        self.algorithms = frozenset(self._by_algorithm) | ({"HS256"} if secret else set())

    def key_for(self, header: Mapping[str, Any], accepted: Collection[str]) -> VerifyKey:
        """The one key that may check a token with this header, or GatewayError: its `alg`
        must be accepted and be its key's; an unknown `kid` raises UnknownKid."""
        alg = header.get("alg")
        if alg == "HS256" and self.secret is not None and alg in accepted:
            return VerifyKey("HS256", self.secret)
        if alg not in self.algorithms or alg not in accepted:
            raise unauthenticated(f"token algorithm {alg!r} is not accepted", "bad_algorithm")
        kid = header.get("kid")
        if kid is None:
            return self._only_key(alg)
        if not isinstance(kid, str) or kid not in self.by_kid:
            raise UnknownKid(kid)
        key = self.by_kid[kid]
        if key.algorithm != alg:
            raise unauthenticated(
                f"token algorithm {alg!r} does not match its key", "bad_algorithm"
            )
        return key

    def _only_key(self, alg: str) -> VerifyKey:
        """A token without `kid` (as issuers with one key send): the one key of its
        algorithm. With several, which one is meant is not guessed."""
        candidates = self._by_algorithm.get(alg, [])
        if len(candidates) != 1:
            raise unauthenticated(
                f"token has no key id and {len(candidates)} {alg} keys could verify it",
                "missing_kid",
            )
        return candidates[0]


class UnknownKid(GatewayError):
    """A token names a key its issuer's keys do not hold (yet: a provider's new key)."""

    def __init__(self, kid: object) -> None:
        shown = repr(kid)[:80]
        super().__init__(
            Code.UNAUTHENTICATED, f"token key id {shown} is unknown", reason="unknown_kid"
        )
        self.kid = kid if isinstance(kid, str) else None


def algorithm_for(key: PublicKey) -> str:
    for kind, alg in ASYMMETRIC_ALGORITHMS.items():
        if isinstance(key, kind):
            return alg
    raise ValueError(f"unsupported public key type {type(key).__name__}")


@dataclass(frozen=True, slots=True)
class KeyFile:
    """The usable keys of a PEM or JWKS file by `kid`, and the keys left out, each with why."""

    keys: dict[str, PublicKey]
    skipped: tuple[str, ...] = ()


def read_key_file(path: Path) -> KeyFile:
    """Read verification keys: a JWKS file (each key's `kid`, else its thumbprint) or a PEM
    file (kid = the key's RFC 7638 thumbprint). JWKS keys that are not for signing or not
    of an accepted algorithm are skipped; no usable key at all is a ValueError."""
    text = path.read_text()
    if not text.lstrip().startswith("{"):
        key = _public_key(serialization.load_pem_public_key(text.encode()), str(path))
        return KeyFile({key_id(key): key})
    found = keys_from_jwks(json.loads(text), str(path))
    if not found.keys:
        raise ValueError(f"{path}: no usable verification key ({'; '.join(found.skipped)})")
    return found


def load_public_keys(path: Path) -> dict[str, PublicKey]:
    return read_key_file(path).keys


def keys_from_jwks(doc: Any, where: str) -> KeyFile:
    """The usable keys of a JWKS document (a file's or a provider's), and those skipped."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError(f"{where}: a JWKS must be an object with a 'keys' list")
    keys: dict[str, PublicKey] = {}
    skipped: list[str] = []
    for i, jwk in enumerate(doc["keys"]):
        name = f"key {jwk.get('kid', i)!r}" if isinstance(jwk, dict) else f"key {i}"
        try:
            key = _signing_key(jwk)
        except ValueError as e:
            skipped.append(f"{name}: {e}")
            continue
        kid = jwk.get("kid")
        keys[kid if isinstance(kid, str) and kid else key_id(key)] = key
    return KeyFile(keys, tuple(skipped))


def _signing_key(jwk: Any) -> PublicKey:
    """The public key of a JWK meant for verifying signatures with an accepted algorithm,
    or ValueError saying why it is not one."""
    if not isinstance(jwk, dict):
        raise ValueError("not a JSON object")
    if jwk.get("use", "sig") != "sig":
        raise ValueError(f"not a signing key (use {jwk['use']!r})")
    if "key_ops" in jwk and "verify" not in (jwk["key_ops"] or ()):
        raise ValueError(f"not a verification key (key_ops {jwk['key_ops']!r})")
    accepted = ASYMMETRIC_ALGORITHMS.values()
    if "alg" in jwk and jwk["alg"] not in accepted:
        raise ValueError(f"algorithm {jwk['alg']!r} is not accepted ({', '.join(accepted)})")
    if "d" in jwk:
        raise ValueError("holds a private key; publish only the public part")
    try:
        key = jwt.PyJWK(jwk).key
    except (jwt.PyJWTError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"unsupported key ({e})") from None
    return _public_key(key, "the key")


def _public_key(key: object, where: str) -> PublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey) and not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{where}: EC curve {key.curve.name} is not P-256 (ES256)")
    if isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return key
    raise ValueError(f"{where}: unsupported or non-public key type {type(key).__name__}")


def load_private_key(path: Path) -> PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(
        key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    ):
        raise ValueError(f"{path}: unsupported private key type {type(key).__name__}")
    return key


def key_id(key: PublicKey) -> str:
    """RFC 7638 thumbprint of a public key, used as its `kid`."""
    return jwt.utils.base64url_encode(_thumbprint(public_jwk(key))).decode()


def public_jwk(key: PublicKey, kid: str | None = None) -> dict[str, Any]:
    alg = algorithm_for(key)
    algo = jwt.get_algorithm_by_name(alg)
    jwk: dict[str, Any] = json.loads(algo.to_jwk(key))
    jwk["alg"] = alg
    jwk["use"] = "sig"
    if kid:
        jwk["kid"] = kid
    return jwk


def _thumbprint(jwk: Mapping[str, Any]) -> bytes:
    members = {"OKP": ("crv", "kty", "x"), "EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}
    required = members[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).digest()
