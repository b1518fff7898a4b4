"""One-shot reads of the gateway over HTTP: the channels a token may open
(GET /api/logs/channels) and pages of history (GET /api/logs/history). Each follows the
answer's `next` cursor until it runs out or enough is read, then returns: for scripts and
for the `channels` and `history` verbs, where `tail` follows for ever."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

import aiohttp

from logs_gateway.errors import Unavailable, error_for
from logs_gateway.tail import _STATUS_CODES, _cause, _error_message
from logs_gateway.tokens import TokenSource, fetch_token

CHANNELS_PATH = "/api/logs/channels"
HISTORY_PATH = "/api/logs/history"
TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=3)


async def pages(
    url: str, path: str, params: Mapping[str, str], token: TokenSource, follow: str
) -> AsyncGenerator[dict[str, Any], None]:
    """The answers of `path`, the first with `params`, each next one with `follow` set to
    the cursor the one before gave (`next`), until one gives none. A refusal raises the
    LogsGatewayError of its status; an unreachable gateway, Unavailable."""
    query = dict(params)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        while True:
            headers = {"Authorization": f"Bearer {await fetch_token(token)}"}
            try:
                async with session.get(url.rstrip("/") + path, params=query, headers=headers) as r:
                    if r.status != 200:
                        message = await _error_message(r)
                        raise error_for(_STATUS_CODES.get(r.status, 0), message)
                    body: dict[str, Any] = await r.json()
            except (aiohttp.ClientError, TimeoutError) as e:
                raise Unavailable(f"cannot reach {url}: {_cause(e)}") from None
            yield body
            if not body.get("next"):
                return
            query[follow] = str(body["next"])


async def list_channels(
    url: str, pattern: str, token: TokenSource, most: int
) -> list[dict[str, Any]]:
    """Up to `most` channels matching `pattern` that the token may open, newest activity
    first: each with `channel`, `entries`, `last_activity` and `cursor`."""
    found: list[dict[str, Any]] = []
    params = {"pattern": pattern, "limit": str(min(most, 1000))}
    async with aclosing(pages(url, CHANNELS_PATH, params, token, "before")) as answers:
        async for page in answers:
            found += page["channels"]
            if len(found) >= most:
                break
    return found[:most]
