"""Trusted issuers: whose tokens are accepted, for which audiences and algorithms, with
which keys, and how their claims become rights (gateway/core/rights.py).

Keys come from a KeySource: a fixed set (a file, the HS256 secret) or one kept fresh from a
provider by the app (gateway/app/jwks.py), which the core reaches only through this
protocol: verifying never waits on the network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gateway.core.keys import ASYMMETRIC_ALGORITHMS, KeySet
from gateway.core.rights import LogsClaimRule, Rule

MAX_LEEWAY = 30.0
ALL_ALGORITHMS = frozenset({"HS256", *ASYMMETRIC_ALGORITHMS.values()})


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """How an issuer's keys stand, for /ready, /metrics and `logs-gateway rights`."""

    usable: bool
    detail: str = "ok"
    age: float | None = None  # seconds since the keys were last fetched (remote keys)
    fetches: Mapping[str, int] = field(default_factory=dict)  # by result


class KeySource(Protocol):
    def current(self) -> KeySet:
        """The keys to verify with now, or GatewayError (UNAVAILABLE) when there are none
        to trust: never fetched, or older than the issuer's staleness bound."""

    def missing(self, kid: str | None) -> bool:
        """A token names a `kid` the keys lack: ask for a re-fetch (at most once per
        interval). True when one is under way, so the caller may be told to retry."""

    def status(self) -> KeyStatus: ...


class StaticKeys:
    """Keys that change only when the operator says so (a file, reloaded on SIGHUP)."""

    def __init__(self, keys: KeySet) -> None:
        self.keys = keys

    def current(self) -> KeySet:
        return self.keys

    def missing(self, kid: str | None) -> bool:
        return False

    def status(self) -> KeyStatus:
        return KeyStatus(True)


@dataclass(frozen=True, slots=True)
class Issuer:
    """One trusted `iss`: tokens naming it are checked with its keys, for its audiences and
    algorithms, and get the rights its rules give."""

    name: str
    audiences: tuple[str, ...]
    keys: KeySource
    rules: Sequence[Rule] = (LogsClaimRule(),)
    algorithms: frozenset[str] = ALL_ALGORITHMS
    leeway: float = 5.0

    def __post_init__(self) -> None:
        if not self.name or not self.audiences:
            raise ValueError("an issuer needs its `iss` and at least one audience")
        unknown = self.algorithms - ALL_ALGORITHMS
        if unknown or not self.algorithms:
            raise ValueError(
                f"issuer {self.name!r}: algorithms must be some of {sorted(ALL_ALGORITHMS)}"
            )
        if not 0 <= self.leeway <= MAX_LEEWAY:
            raise ValueError(f"issuer {self.name!r}: leeway must be 0-{MAX_LEEWAY:g} seconds")
