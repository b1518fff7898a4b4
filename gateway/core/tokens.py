"""JWT credentials (DESIGN §4): one verifier that returns a Principal or raises, and a signer.

Identity comes only from a verified token. A token names its issuer (`iss`); only a trusted
issuer's keys, audiences, algorithms and rules apply to it (gateway/core/issuers.py), so a
token of issuer A signed with issuer B's key is refused. Which key checks it and why is in
gateway/core/keys.py; what it may do, in gateway/core/rights.py.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from gateway.core.channels import Pattern, allowed, parse_pattern
from gateway.core.errors import Code, GatewayError, denied, unauthenticated
from gateway.core.issuers import MAX_LEEWAY, Issuer, KeyStatus, StaticKeys
from gateway.core.keys import KeySet, PrivateKey, PublicKey, UnknownKid, VerifyKey, algorithm_for
from gateway.core.rights import Finding, LogsClaimRule, Rule, evaluate, rights_of

REQUIRED_CLAIMS = ("sub", "exp", "iat", "iss", "aud")
MAX_TOKEN_BYTES = 8192
OWN_RULES: tuple[Rule, ...] = (LogsClaimRule(),)


@dataclass(frozen=True, slots=True, eq=False)
class Principal:
    """Who a verified token speaks for and what it may do.

    Compared and hashed by identity: the verifier hands out one Principal per token while it
    remembers it, and publish verdicts are kept by (Principal, channel) (core.ingest), so a
    publish hashes it every time; by its fields that was two Python calls a hash."""

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


class Verifier:
    """Verifies bearer tokens from the trusted issuers.

    The gateway's own issuer (the flags: an HS256 secret and/or public keys, one audience,
    rights from the `logs` claim) and any issuers of `trusted` (an issuers file). Verified
    tokens are remembered (keyed by the token string, at most `cache_entries`, the oldest
    dropped first) until their `expires_at`, so a busy publisher or a browser that
    reconnects pays one signature check per token, not one per request. A cached token is
    answered by the same expiry test as a fresh one; nothing is kept for a refused token,
    so each refusal is the verifier's own; new keys, or an issuer whose keys went stale,
    drop the cache (forget).
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
        trusted: Sequence[Issuer] = (),
    ) -> None:
        self._local: StaticKeys | None = None
        issuers = list(trusted)
        if secret is not None or public_keys:
            self._local = StaticKeys(KeySet(public_keys, secret))
            own = Issuer(
                issuer, (audience,), self._local, OWN_RULES, leeway=min(leeway, MAX_LEEWAY)
            )
            issuers.insert(0, own)
        if not issuers:
            raise ValueError("a verifier needs an HS256 secret, a public key or a trusted issuer")
        self._issuers = {i.name: i for i in issuers}
        if len(self._issuers) != len(issuers):
            raise ValueError("each issuer may be trusted once (two share an `iss`)")
        self._only = issuers[0] if len(issuers) == 1 else None
        self._cache: dict[str, Principal] = {}
        self._cache_entries = cache_entries
        self.cache_hits = 0
        self.refusals: Counter[str] = Counter()  # by GatewayError.reason, for /metrics

    def use_keys(self, *, secret: bytes | None, public_keys: Mapping[str, PublicKey]) -> None:
        """Verify the gateway's own tokens with these keys from now on (a reload); tokens
        cached under the old keys are forgotten, so a key taken out refuses its tokens at
        once."""
        if self._local is None or (secret is None and not public_keys):
            raise ValueError("a verifier needs an HS256 secret or at least one public key")
        self._local.keys = KeySet(public_keys, secret)
        self.forget()

    def forget(self) -> None:
        """Drop every remembered token: the keys they were checked with changed."""
        self._cache.clear()

    @property
    def algorithms(self) -> list[str]:
        """The algorithms of the gateway's own keys."""
        return sorted(self._local.keys.algorithms) if self._local else []

    @property
    def issuers(self) -> list[Issuer]:
        return list(self._issuers.values())

    def status(self) -> dict[str, KeyStatus]:
        return {name: i.keys.status() for name, i in self._issuers.items()}

    @property
    def cached(self) -> int:
        return len(self._cache)

    def verify(self, token: str | None) -> Principal:
        """Return the token's Principal or raise GatewayError (UNAUTHENTICATED; UNAVAILABLE
        when its issuer's keys cannot be trusted now, or are being fetched again)."""
        if token and (principal := self._cache.get(token)) is not None:
            if time.time() < principal.expires_at:
                self.cache_hits += 1
                return principal
            del self._cache[token]  # and the verifier below refuses it, as it would anyway
        try:
            issuer, claims = self.verified_claims(token)
            principal = principal_from_claims(claims, issuer.leeway, issuer.rules)
        except GatewayError as e:
            self.refusals[e.reason] += 1
            raise
        self._remember(token, principal)
        return principal

    def explain(self, token: str) -> Explanation:
        """What `token` may do and why, for an operator debugging a refusal."""
        try:
            issuer, claims = self.verified_claims(token)
            findings = evaluate(issuer.rules, claims)
            principal = principal_from_claims(claims, issuer.leeway, issuer.rules)
        except GatewayError as e:
            return Explanation(None, [], None, e)
        return Explanation(issuer, findings, principal, None)

    def _remember(self, token: str | None, principal: Principal) -> None:
        if not token or self._cache_entries <= 0:
            return
        if len(self._cache) >= self._cache_entries:
            del self._cache[next(iter(self._cache))]
        self._cache[token] = principal

    def verified_claims(self, token: str | None) -> tuple[Issuer, dict[str, Any]]:
        """The issuer and claims of a token whose signature, issuer, audience and times
        check out (its `exp` is checked with its rights, by principal_from_claims)."""
        if not token:
            raise unauthenticated("missing bearer token", "missing")
        if len(token) > MAX_TOKEN_BYTES:
            raise unauthenticated(f"token longer than {MAX_TOKEN_BYTES} bytes", "malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthenticated("token is not a well-formed JWT", "malformed") from None
        issuer = self._only or self._issuer_of(token)
        key = _key_for(issuer, header)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=list(issuer.audiences),
                issuer=issuer.name,
                leeway=issuer.leeway,
                # `exp` is checked below, by the same test a cached token gets.
                options={"require": list(REQUIRED_CLAIMS), "verify_exp": False},
            )
        except jwt.PyJWTError as e:
            raise _refusal(e) from None
        return issuer, claims

    def _issuer_of(self, token: str) -> Issuer:
        """The trusted issuer a token names (read before its signature is checked, to know
        which keys may check it; the signature check then requires the same `iss`)."""
        try:
            payload = json.loads(jwt.utils.base64url_decode(token.split(".")[1]))
        except (ValueError, IndexError, jwt.PyJWTError):
            raise unauthenticated("token is not a well-formed JWT", "malformed") from None
        iss = payload.get("iss") if isinstance(payload, dict) else None
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            shown = repr(iss)[:100]
            raise unauthenticated(f"token issuer {shown} is not trusted here", "bad_issuer")
        return issuer


@dataclass(frozen=True, slots=True)
class Explanation:
    """A token as `logs-gateway rights` shows it: its issuer, what each rule made of its
    claims, and its rights, or why it is refused."""

    issuer: Issuer | None
    findings: list[Finding]
    principal: Principal | None
    error: GatewayError | None


def _key_for(issuer: Issuer, header: Mapping[str, Any]) -> VerifyKey:
    try:
        return issuer.keys.current().key_for(header, issuer.algorithms)
    except UnknownKid as e:
        if not issuer.keys.missing(e.kid):
            raise
        raise GatewayError(
            Code.UNAVAILABLE,
            f"{e.message} to issuer {issuer.name!r}; its keys are being fetched again, retry",
            reason="unknown_kid_refetch",
            retry_after=1.0,
        ) from None


def _refusal(e: jwt.PyJWTError) -> GatewayError:
    if isinstance(e, jwt.ImmatureSignatureError):
        return unauthenticated("token not yet valid (iat/nbf in the future)", "not_yet_valid")
    if isinstance(e, jwt.InvalidSignatureError):
        return unauthenticated("token signature does not verify", "bad_signature")
    if isinstance(e, jwt.MissingRequiredClaimError):
        return unauthenticated(f"token lacks the {e.claim!r} claim", "missing_claim")
    if isinstance(e, jwt.InvalidAudienceError):
        return unauthenticated("token audience is not accepted here", "bad_audience")
    if isinstance(e, jwt.InvalidIssuerError):
        return unauthenticated("token issuer is not accepted here", "bad_issuer")
    return unauthenticated(f"invalid token: {e}", "malformed")


def principal_from_claims(
    claims: Mapping[str, Any], leeway: float, rules: Sequence[Rule] = OWN_RULES
) -> Principal:
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub:
        raise unauthenticated("token 'sub' must be a non-empty string", "bad_claims")
    for name in ("exp", "iat", "nbf"):
        # PyJWT also takes a numeric string; the JWT spec and every other reader do not.
        if name in claims and not _is_number(claims[name]):
            raise unauthenticated(f"token {name!r} must be a number of seconds", "bad_claims")
    rights = rights_of(evaluate(rules, claims))
    principal = Principal(
        subject=sub,
        publish=rights.publish,
        subscribe=rights.subscribe,
        admin=rights.admin,
        expires_at=float(claims["exp"]) + leeway,
        token_id=str(claims.get("jti", "")),
    )
    if time.time() >= principal.expires_at:
        raise unauthenticated("token expired", "expired")
    return principal


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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
        alg = algorithm_for(self._private_key.public_key())
        return jwt.encode(claims, self._private_key, algorithm=alg, headers={"kid": self._kid})
