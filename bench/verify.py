"""`python -m bench verify [--quick]`: the CPU cost of verifying a token whose issuer's keys
came from a provider (JWKS over HTTP, cached), against one whose key is in a file.

Both verifiers check the same RS256 token shape (the identity providers' algorithm); the
remote one got its keys from a JWKS served on loopback. Two cases: every request checks the
signature (token cache off), and a token seen before (token cache on). Rounds alternate
between the two so the machine's noise falls on both; the ratio is of process CPU time.
Target: remote <= 1.1x file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.app.jwks import FetchLimits, RemoteKeys
from gateway.core.issuers import Issuer
from gateway.core.keys import PublicKey, public_jwk, read_key_file
from gateway.core.rights import LogsClaimRule
from gateway.core.tokens import Verifier

ISSUER = "http://127.0.0.1/realms/bench"
KID = "bench-key"
TARGET = 1.1


def token(key: rsa.RSAPrivateKey, iss: str) -> str:
    now = int(time.time())
    claims = {
        "sub": "bench", "iss": iss, "aud": "logs-gateway", "iat": now, "exp": now + 3600,
        "jti": "bench", "logs": {"publish": ["logs:etl:>"], "subscribe": [], "admin": False},
    }  # fmt: skip
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})


async def remote_issuer(jwks: Mapping[str, object]) -> Issuer:
    """An issuer whose keys were fetched from a JWKS served on loopback."""

    async def answer(_: web.Request) -> web.Response:
        return web.json_response(jwks)

    app = web.Application()
    app.router.add_get("/jwks", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    keys = RemoteKeys(ISSUER, jwks_url=f"http://127.0.0.1:{port}/jwks", limits=FetchLimits())
    await keys.fetch_once()
    await runner.cleanup()
    return Issuer(ISSUER, ("logs-gateway",), keys, (LogsClaimRule(),), frozenset({"RS256"}))


def verifier(
    keys: Mapping[str, PublicKey], own_issuer: str, cache: int, trusted: list[Issuer]
) -> Verifier:
    return Verifier(
        secret=None,
        public_keys=keys,
        issuer=own_issuer,
        audience="logs-gateway",
        leeway=5.0,
        cache_entries=cache,
        trusted=trusted,
    )


def cpu_per_call(verify: Callable[[str], object], tokens: list[str]) -> float:
    started = time.process_time()
    for t in tokens:
        verify(t)
    return (time.process_time() - started) / len(tokens)


def measure(
    file: Verifier, remote: Verifier, tokens: tuple[list[str], list[str]], rounds: int
) -> float:
    """The median over rounds of remote's CPU per call over file's."""
    ratios = []
    for _ in range(rounds):
        f = cpu_per_call(file.verify, tokens[0])
        r = cpu_per_call(remote.verify, tokens[1])
        ratios.append(r / f)
    return statistics.median(ratios)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench verify", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few calls, for the smoke test")
    args = parser.parse_args(argv)
    calls, rounds = (100, 3) if args.quick else (2000, 7)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = {"keys": [public_jwk(key.public_key(), KID)]}
    issuer = asyncio.run(remote_issuer(jwks))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "jwks.json"
        path.write_text(json.dumps(jwks))
        keys = read_key_file(path).keys
        none: Mapping[str, PublicKey] = {}
        cases = (
            ("signature checked", 0, none),
            ("token cached", 10, none),
            # Beside the gateway's own issuer: the token's `iss` picks its issuer.
            ("signature checked, two issuers", 0, keys),
        )
        for case, cache, own in cases:
            file = verifier(keys, ISSUER, cache, [])
            remote = verifier(own, "logs-gateway", cache, [issuer])
            tokens = ([token(key, ISSUER)] * calls, [token(key, ISSUER)] * calls)
            ratio = measure(file, remote, tokens, rounds)
            per_call = cpu_per_call(remote.verify, tokens[1]) * 1e6
            verdict = "meets" if ratio <= TARGET else "misses"
            print(
                f"{case}: remote {ratio:.3f}x file, {per_call:.1f} us a call ({verdict} {TARGET}x)"
            )
    return 0
