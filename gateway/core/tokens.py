"""JWT credentials (DESIGN §4): one verifier that returns a Principal or raises, and a signer.

Identity comes only from a verified token. Algorithms are an explicit allow-list, each bound
to its own key: an HS256 token is checked only against the shared secret, an asymmetric one
only against a public key of its algorithm (the one its `kid` names, or the only one), so a
public key can never be used as a secret.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.core.channels import Pattern, allowed, parse_pattern, parse_patterns
from gateway.core.errors import GatewayError, denied, unauthenticated

REQUIRED_CLAIMS = ("sub", "exp", "iat", "iss", "aud")
MAX_TOKEN_BYTES = 8192
MAX_LEEWAY = 30.0
ASYMMETRIC_ALGORITHMS = {
    ed25519.Ed25519PublicKey: "EdDSA",
    ec.EllipticCurvePublicKey: "ES256",
    rsa.RSAPublicKey: "RS256",
}
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token speaks for and what it may do."""

    subject: str
    publish: tuple[Pattern, ...]
    subscribe: tuple[Pattern, ...]
    admin: bool
    # The instant the token stops being accepted: its `exp` plus the clock leeway. A stream
    # ends at this same instant, so a token accepted at connect is never ended at once.
    expires_at: float
    token_id: str

    @property
    def owner(self) -> str:
        """What per-token limits count by: one token, not every token of a subject."""
        return f"{self.subject}/{self.token_id}"

    def check_publish(self, channel: Pattern) -> None:
        if not (self.admin or allowed(self.publish, channel)):
            raise denied(f"token {self.subject!r} may not publish to {channel.text!r}")

    def check_subscribe(self, channel: Pattern) -> None:
        if not (self.admin or allowed(self.subscribe, channel)):
            raise denied(f"token {self.subject!r} may not subscribe to {channel.text!r}")

    def require_admin(self) -> None:
        if not self.admin:
            raise denied(f"token {self.subject!r} is not an admin token")


@dataclass(frozen=True, slots=True)
class VerifyKey:
    algorithm: str
    key: PublicKey | bytes


class Verifier:
    """Verifies bearer tokens against the configured keys and claims.

    Verified tokens are remembered (keyed by the token string, at most `cache_entries`,
    the oldest dropped first) until their `expires_at`, so a busy publisher or a browser
    that reconnects pays one signature check per token, not one per request. A cached
    token is answered by the same expiry test as a fresh one; nothing is kept for a
    refused token, so each refusal is the verifier's own; new keys drop the cache.
    """

    def __init__(
        self,
        *,
        secret: bytes | None,
        public_keys: Mapping[str, PublicKey],
        issuer: str,
        audience: str,
        leeway: float,
        cache_entries: int,
    ) -> None:
        self._issuer = issuer
        self._audience = audience
        self._leeway = min(leeway, MAX_LEEWAY)
        self._cache: dict[str, Principal] = {}
        self._cache_entries = cache_entries
        self.cache_hits = 0
        self.refusals: Counter[str] = Counter()  # by GatewayError.reason, for /metrics
        self.use_keys(secret=secret, public_keys=public_keys)

    def use_keys(self, *, secret: bytes | None, public_keys: Mapping[str, PublicKey]) -> None:
        """Verify with these keys from now on (a reload); tokens cached under the old keys
        are forgotten, so a key taken out refuses its tokens at once."""
        if secret is None and not public_keys:
            raise ValueError("a verifier needs an HS256 secret or at least one public key")
        self._secret = secret
        self._keys = {kid: VerifyKey(_algorithm_for(k), k) for kid, k in public_keys.items()}
        self._by_algorithm: dict[str, list[VerifyKey]] = {}
        for key in self._keys.values():
            self._by_algorithm.setdefault(key.algorithm, []).append(key)
        self._cache.clear()

    @property
    def algorithms(self) -> list[str]:
        algs = set(self._by_algorithm)
        if self._secret is not None:
            algs.add("HS256")
        return sorted(algs)

    @property
    def cached(self) -> int:
        return len(self._cache)

    def verify(self, token: str | None) -> Principal:
        """Return the token's Principal or raise GatewayError(UNAUTHENTICATED)."""
        if token and (principal := self._cache.get(token)) is not None:
            if time.time() < principal.expires_at:
                self.cache_hits += 1
                return principal
            del self._cache[token]  # and the verifier below refuses it, as it would anyway
        try:
            principal = self._verify(token)
        except GatewayError as e:
            self.refusals[e.reason] += 1
            raise
        self._remember(token, principal)
        return principal

    def _remember(self, token: str | None, principal: Principal) -> None:
        if not token or self._cache_entries <= 0:
            return
        if len(self._cache) >= self._cache_entries:
            del self._cache[next(iter(self._cache))]
        self._cache[token] = principal

    def _verify(self, token: str | None) -> Principal:
        if not token:
            raise unauthenticated("missing bearer token", "missing")
        if len(token) > MAX_TOKEN_BYTES:
            raise unauthenticated(f"token longer than {MAX_TOKEN_BYTES} bytes", "malformed")
        key = self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                # `exp` is checked below, by the same test a cached token gets.
                options={"require": list(REQUIRED_CLAIMS), "verify_exp": False},
            )
        except jwt.ImmatureSignatureError:
            raise unauthenticated(
                "token not yet valid (iat/nbf in the future)", "not_yet_valid"
            ) from None
        except jwt.InvalidSignatureError:
            raise unauthenticated("token signature does not verify", "bad_signature") from None
        except jwt.MissingRequiredClaimError as e:
            raise unauthenticated(f"token lacks the {e.claim!r} claim", "missing_claim") from None
        except jwt.InvalidAudienceError:
            raise unauthenticated("token audience is not accepted here", "bad_audience") from None
        except jwt.InvalidIssuerError:
            raise unauthenticated("token issuer is not accepted here", "bad_issuer") from None
        except jwt.PyJWTError as e:
            raise unauthenticated(f"invalid token: {e}", "malformed") from None
        principal = principal_from_claims(claims, self._leeway)
        if time.time() >= principal.expires_at:
            raise unauthenticated("token expired", "expired")
        return principal

    def _key_for(self, token: str) -> VerifyKey:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthenticated("token is not a well-formed JWT", "malformed") from None
        alg = header.get("alg")
        if alg == "HS256" and self._secret is not None:
            return VerifyKey("HS256", self._secret)
        kid = header.get("kid")
        if alg not in self.algorithms:
            raise unauthenticated(f"token algorithm {alg!r} is not accepted", "bad_algorithm")
        if kid is None:
            return self._only_key(alg)
        if not isinstance(kid, str) or kid not in self._keys:
            raise unauthenticated(f"token key id {kid!r} is unknown", "unknown_kid")
        key = self._keys[kid]
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


def principal_from_claims(claims: Mapping[str, Any], leeway: float) -> Principal:
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub:
        raise unauthenticated("token 'sub' must be a non-empty string", "bad_claims")
    rights = claims.get("logs", {})
    if not isinstance(rights, dict):
        raise unauthenticated("token 'logs' claim must be an object", "bad_claims")
    try:
        publish = parse_patterns(_string_list(rights, "publish"))
        subscribe = parse_patterns(_string_list(rights, "subscribe"))
    except GatewayError as e:
        raise unauthenticated(f"token rights are invalid: {e.message}", "bad_claims") from None
    admin = rights.get("admin", False)
    if not isinstance(admin, bool):
        raise unauthenticated("token 'logs.admin' must be true or false", "bad_claims")
    for name in ("exp", "iat", "nbf"):
        # PyJWT also takes a numeric string; the JWT spec and every other reader do not.
        if name in claims and not _is_number(claims[name]):
            raise unauthenticated(f"token {name!r} must be a number of seconds", "bad_claims")
    exp = claims["exp"]
    return Principal(
        subject=sub,
        publish=publish,
        subscribe=subscribe,
        admin=admin,
        expires_at=float(exp) + leeway,
        token_id=str(claims.get("jti", "")),
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _string_list(rights: Mapping[str, Any], name: str) -> list[str]:
    value = rights.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise unauthenticated(f"token 'logs.{name}' must be a list of strings", "bad_claims")
    return value


def _algorithm_for(key: PublicKey) -> str:
    for kind, alg in ASYMMETRIC_ALGORITHMS.items():
        if isinstance(key, kind):
            return alg
    raise ValueError(f"unsupported public key type {type(key).__name__}")


class Signer:
    """Mints tokens with the configured key (for the CLI, dev mode and tests)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        secret: bytes | None = None,
        private_key: PrivateKey | None = None,
        kid: str | None = None,
    ) -> None:
        if (secret is None) == (private_key is None):
            raise ValueError("a signer needs exactly one of secret or private_key")
        self._issuer = issuer
        self._audience = audience
        self._secret = secret
        self._private_key = private_key
        self._kid = kid

    def mint(
        self,
        subject: str,
        *,
        publish: list[str] | tuple[str, ...] = (),
        subscribe: list[str] | tuple[str, ...] = (),
        admin: bool = False,
        ttl: float = 3600.0,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Return a signed JWT; patterns are validated so a typo fails here, not later."""
        for p in (*publish, *subscribe):
            parse_pattern(p)
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": subject,
            "iss": self._issuer,
            "aud": self._audience,
            "iat": now,
            "exp": now + max(1, int(ttl)),
            "jti": uuid.uuid4().hex,
            "logs": {"publish": list(publish), "subscribe": list(subscribe), "admin": admin},
        }
        claims.update(extra or {})
        if self._secret is not None:
            return jwt.encode(claims, self._secret, algorithm="HS256")
        assert self._private_key is not None
        alg = _algorithm_for(self._private_key.public_key())
        return jwt.encode(claims, self._private_key, algorithm=alg, headers={"kid": self._kid})


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
    found = _keys_from_jwks(json.loads(text), path)
    if not found.keys:
        raise ValueError(f"{path}: no usable verification key ({'; '.join(found.skipped)})")
    return found


def load_public_keys(path: Path) -> dict[str, PublicKey]:
    return read_key_file(path).keys


def _keys_from_jwks(doc: Any, path: Path) -> KeyFile:
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError(f"{path}: a JWKS file must be an object with a 'keys' list")
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
    alg = _algorithm_for(key)
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
