"""An issuer's keys from its provider: OIDC discovery or a JWKS URL, fetched in the
background and kept fresh, so verifying a token never waits on the network.

- Refreshed on the provider's `Cache-Control: max-age`, held between `min_refresh` and
  `max_refresh` (600 s without one).
- A token naming an unknown `kid` asks for a re-fetch, granted at most once per `refetch`
  interval; a failed fetch is retried after the same interval. A flood of made-up `kid`s
  is thus at most one fetch per interval, whatever its rate.
- The last good keys stay in use while the provider is down, until they are `max_stale`
  old; then the issuer's tokens are refused (UNAVAILABLE) until a fetch succeeds, and
  /ready and /metrics say so.
- Every fetch is bounded in time (`timeout`) and size (`max_bytes`), goes only to `https`
  (or `http` on a loopback host), and follows redirects only within the same origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from gateway.core.errors import Code, GatewayError
from gateway.core.issuers import KeyStatus
from gateway.core.keys import KeySet, keys_from_jwks

log = logging.getLogger("logs_gateway")
MAX_REDIRECTS = 3
DEFAULT_REFRESH = 600.0
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class FetchLimits:
    timeout: float = 5.0
    max_bytes: int = 1024 * 1024
    min_refresh: float = 60.0
    max_refresh: float = 3600.0
    refetch: float = 30.0
    max_stale: float = 3600.0

    def __post_init__(self) -> None:
        if not 0 < self.min_refresh <= self.max_refresh:
            raise ValueError("min_refresh_seconds must be > 0 and <= max_refresh_seconds")
        if min(self.timeout, self.max_bytes, self.refetch, self.max_stale) <= 0:
            raise ValueError("fetch limits must be greater than 0")


class FetchError(Exception):
    """A fetch that gave no keys; `kind` is a bounded label for the metric."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def check_url(url: str) -> str:
    """`url` if keys may be fetched from it: https, or http to a loopback host (tests,
    development); anything else is a ValueError naming the rule."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return url
    raise ValueError(f"{url!r}: keys are fetched only over https (http only to a loopback host)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RemoteKeys:
    """A KeySource (gateway/core/issuers.py) kept fresh from a provider by `run`."""

    def __init__(
        self,
        issuer: str,
        *,
        jwks_url: str | None = None,
        limits: FetchLimits | None = None,
        ca_file: str | None = None,
        token_file: str | None = None,
    ) -> None:
        self.issuer = issuer
        self.limits = limits or FetchLimits()
        self._jwks_url = check_url(jwks_url) if jwks_url else None
        self._discover = jwks_url is None
        if self._discover:
            check_url(issuer)
        self._ssl = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._token_file = token_file
        self._keys: KeySet | None = None
        self._fetched_at: float | None = None  # monotonic time of the last good fetch
        self._last_attempt = -float("inf")
        self._fetching = False
        self._stale_told = False
        self._wake = asyncio.Event()
        self._last_error = "not fetched yet"
        self._fingerprint = ""
        self.fetches: Counter[str] = Counter()  # by result: ok, timeout, too_large, ...
        self.on_change: Callable[[], None] = lambda: None  # the verifier's forget

    # -- KeySource ------------------------------------------------------------------------

    def current(self) -> KeySet:
        if self._keys is None:
            raise self._unavailable(f"its keys could not be fetched ({self._last_error})")
        if self._stale():
            raise self._unavailable(
                f"its keys are {self._age():.0f} s old, past max_stale_seconds "
                f"({self.limits.max_stale:g}): {self._last_error}"
            )
        return self._keys

    def missing(self, kid: str | None) -> bool:
        if self._fetching:
            return True
        if time.monotonic() - self._last_attempt < self.limits.refetch:
            return False
        self._wake.set()
        self._fetching = True  # from now: a token more waits for this fetch, not another
        return True

    def status(self) -> KeyStatus:
        usable = self._keys is not None and not self._stale()
        detail = "ok" if usable else ("stale" if self._keys is not None else "no keys")
        return KeyStatus(usable, detail, self._age(), dict(self.fetches))

    def _age(self) -> float | None:
        return None if self._fetched_at is None else time.monotonic() - self._fetched_at

    def _stale(self) -> bool:
        age = self._age()
        return age is None or age > self.limits.max_stale

    def _unavailable(self, why: str) -> GatewayError:
        return GatewayError(
            Code.UNAVAILABLE,
            f"tokens of issuer {self.issuer!r} cannot be checked now: {why}",
            reason="issuer_unavailable",
            retry_after=self.limits.refetch,
        )

    # -- fetching ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Fetch now, then whenever the keys are due, a token asks, or they go stale."""
        async with self._session() as session:
            while True:
                delay = await self.refresh(session)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._until_next(delay))
                if self._keys is not None and self._stale() and not self._stale_told:
                    self._stale_told = True
                    log.error("issuer keys stale", extra={"issuer": self.issuer})
                    self.on_change()  # tokens it verified before are not answered from cache

    async def fetch_once(self) -> None:
        """One fetch, outside `run` (for `logs-gateway rights`)."""
        async with self._session() as session:
            await self.refresh(session)

    def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.limits.timeout))

    def _until_next(self, delay: float) -> float:
        """Sleep until the next fetch is due, or the keys go stale if that comes first."""
        age = self._age()
        if age is None or age > self.limits.max_stale:
            return delay
        return max(0.0, min(delay, self.limits.max_stale - age + 0.001))

    async def refresh(self, session: aiohttp.ClientSession) -> float:
        """One fetch; the seconds until the next one is due."""
        self._fetching = True
        self._last_attempt = time.monotonic()
        try:
            keys, max_age = await self._fetch_keys(session)
        except FetchError as e:
            self.fetches[e.kind] += 1
            self._last_error = str(e)
            log.warning("issuer keys not fetched", extra={"issuer": self.issuer, "error": str(e)})
            return self.limits.refetch
        finally:
            self._fetching = False
        self.fetches["ok"] += 1
        self._use(keys)
        limits = self.limits
        due = DEFAULT_REFRESH if max_age is None else max_age
        # Twice within max_stale, so that keys of a provider that answers never go stale.
        return min(max(due, limits.min_refresh), limits.max_refresh, limits.max_stale / 2)

    def _use(self, found: tuple[KeySet, str]) -> None:
        keys, fingerprint = found
        self._keys, self._fetched_at, self._stale_told = keys, time.monotonic(), False
        self._last_error = "the last fetch succeeded"
        if fingerprint != self._fingerprint:
            self._fingerprint = fingerprint
            log.info(
                "issuer keys fetched", extra={"issuer": self.issuer, "kids": sorted(keys.by_kid)}
            )
            self.on_change()

    async def _fetch_keys(
        self, session: aiohttp.ClientSession
    ) -> tuple[tuple[KeySet, str], float | None]:
        if self._discover:
            self._jwks_url = await self._discovered_jwks_url(session)
        url = self._jwks_url
        assert url is not None  # configured, or just discovered
        doc, max_age = await self._get_json(session, url)
        try:
            found = keys_from_jwks(doc, url)
        except ValueError as e:
            raise FetchError("bad_document", str(e)) from None
        if not found.keys:
            raise FetchError("bad_document", f"{url}: no usable key ({'; '.join(found.skipped)})")
        fingerprint = json.dumps(doc.get("keys"), sort_keys=True)
        return (KeySet(found.keys), fingerprint), max_age

    async def _discovered_jwks_url(self, session: aiohttp.ClientSession) -> str:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc, _ = await self._get_json(session, url)
        if doc.get("issuer") != self.issuer:
            shown = repr(doc.get("issuer"))[:100]
            raise FetchError("bad_document", f"{url}: names issuer {shown}, not this one")
        jwks_uri = doc.get("jwks_uri")
        try:
            return check_url(jwks_uri if isinstance(jwks_uri, str) else "")
        except ValueError as e:
            raise FetchError("refused_url", f"{url}: jwks_uri {e}") from None

    async def _get_json(
        self, session: aiohttp.ClientSession, url: str
    ) -> tuple[dict[str, Any], float | None]:
        body, max_age = await self._get(session, url)
        try:
            doc = json.loads(body)
        except ValueError:
            raise FetchError("bad_document", f"{url}: not JSON") from None
        if not isinstance(doc, dict):
            raise FetchError("bad_document", f"{url}: not a JSON object")
        return doc, max_age

    async def _get(self, session: aiohttp.ClientSession, url: str) -> tuple[bytes, float | None]:
        """GET with the limits: same-origin redirects only, at most max_bytes."""
        origin = urlsplit(url)[:2]
        try:
            for _ in range(MAX_REDIRECTS + 1):
                async with session.get(
                    url, allow_redirects=False, ssl=self._ssl, headers=self._headers()
                ) as response:
                    if response.status in (301, 302, 303, 307, 308):
                        url = urljoin(url, response.headers.get("Location", ""))
                        if urlsplit(url)[:2] != origin:
                            raise FetchError("refused_url", f"redirect to another origin: {url}")
                        continue
                    if response.status != 200:
                        raise FetchError("http_status", f"{url}: HTTP {response.status}")
                    body = await self._read(response, url)
                    return body, _max_age(response.headers.get("Cache-Control", ""))
        except TimeoutError:
            raise FetchError("timeout", f"{url}: no answer in {self.limits.timeout:g} s") from None
        except (aiohttp.ClientError, OSError) as e:
            raise FetchError("connection", f"{url}: {e}") from None
        raise FetchError("refused_url", f"{url}: more than {MAX_REDIRECTS} redirects")

    async def _read(self, response: aiohttp.ClientResponse, url: str) -> bytes:
        limit = self.limits.max_bytes
        if (response.content_length or 0) > limit:
            raise FetchError("too_large", f"{url}: answer larger than {limit} bytes")
        body = bytearray()
        async for chunk in response.content.iter_chunked(65536):
            body += chunk
            if len(body) > limit:
                raise FetchError("too_large", f"{url}: answer larger than {limit} bytes")
        return bytes(body)

    def _headers(self) -> dict[str, str]:
        """A bearer token for providers that want one (the Kubernetes API server), read at
        each fetch: the file is rotated."""
        if not self._token_file:
            return {}
        return {"Authorization": "Bearer " + Path(self._token_file).read_text().strip()}


def _max_age(cache_control: str) -> float | None:
    """The provider's `max-age`; `no-cache` / `no-store` mean as soon as min_refresh."""
    if "no-cache" in cache_control or "no-store" in cache_control:
        return 0.0
    found = _MAX_AGE.search(cache_control)
    return float(found.group(1)) if found else None
