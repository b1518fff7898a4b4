"""Where a client's token comes from, and when to ask for a new one.

A token is a string, or a callable (plain or async) that returns a fresh one: clients ask it
again before the current token expires and after the gateway refused one. The client only
reads `exp`/`iat` from the token to plan that; it never verifies it (the gateway does).
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

TokenSource = str | Callable[[], str] | Callable[[], Awaitable[str]]

# Ask for a new token this long before expiry, at most (and at most a fifth of its lifetime).
REFRESH_MARGIN = 30.0


async def fetch_token(source: TokenSource) -> str:
    """The current token; a callable is called (and awaited if it is async)."""
    if isinstance(source, str):
        token = source
    else:
        result = source()
        token = await result if inspect.isawaitable(result) else result
    if not isinstance(token, str) or not token.strip():
        raise ValueError("the token source returned no token")
    return token.strip()


def token_file(path: str | os.PathLike[str]) -> Callable[[], str]:
    """A token source that reads `path` each time it is asked, as a Kubernetes projected
    service-account token needs: the kubelet writes a new one before the old expires (at
    80% of its lifetime), and clients ask again before expiry and after a refusal.

        Publisher(token_file("/var/run/secrets/logs-gateway/token"))
    """
    file = Path(path)

    def read() -> str:
        return file.read_text()

    return read


def refresh_in(token: str, now: float | None = None) -> float | None:
    """Seconds until `token` should be replaced, or None when it carries no expiry."""
    claims = _claims(token)
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        return None
    iat = claims.get("iat")
    lifetime = exp - iat if isinstance(iat, int | float) and iat < exp else exp
    now = time.time() if now is None else now
    return max(0.0, exp - min(REFRESH_MARGIN, lifetime / 5) - now)


def _claims(token: str) -> dict[str, object]:
    """The unverified payload of a JWT; {} for anything else."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}
