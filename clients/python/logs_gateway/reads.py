"""One-shot reads of the gateway over HTTP: the channels a token may open
(GET /api/logs/channels) and pages of history (GET /api/logs/history). Each follows the
answer's cursor until it runs out or enough is read, then returns: for scripts and for the
`channels` and `history` verbs, where `tail` follows for ever."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

import aiohttp

from logs_gateway.errors import Unavailable, error_for
from logs_gateway.tail import _STATUS_CODES, Printer, _cause, _error_message
from logs_gateway.tokens import TokenSource, fetch_token

CHANNELS_PATH = "/api/logs/channels"
HISTORY_PATH = "/api/logs/history"
PAGE_MOST = 1000  # the most one answer holds (the gateway's bound)
TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=3)


async def pages(
    url: str, path: str, params: Mapping[str, str], token: TokenSource, cursor: str, follow: str
) -> AsyncGenerator[dict[str, Any], None]:
    """The answers of `path`, the first with `params`, each next one asked with `follow`
    set to the answer's `cursor` field, until one has none (or says `end`). A refusal
    raises the LogsGatewayError of its status; an unreachable gateway, Unavailable."""
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
            if not body.get(cursor) or body.get("end"):
                return
            query = {k: v for k, v in query.items() if k not in ("before", "after", "since")}
            query[follow] = str(body[cursor])


async def list_channels(
    url: str, pattern: str, token: TokenSource, most: int
) -> list[dict[str, Any]]:
    """Up to `most` channels matching `pattern` that the token may open, newest activity
    first: each with `channel`, `entries`, `last_activity` and `cursor`."""
    found: list[dict[str, Any]] = []
    params = {"pattern": pattern, "limit": str(min(most, PAGE_MOST))}
    async with aclosing(pages(url, CHANNELS_PATH, params, token, "next", "before")) as answers:
        async for answer in answers:
            found += answer["channels"]
            if len(found) >= most:
                break
    return found[:most]


async def read_forward(
    url: str, params: Mapping[str, str], token: TokenSource, most: int | None
) -> AsyncGenerator[tuple[list[dict[str, Any]], dict[str, Any]], None]:
    """History from `params`' `after` or `since` on, oldest first, up to the newest entry
    (or `most` entries), a page at a time: its entries, and the answer (whose `after`
    goes on from there)."""
    left = most
    query = dict(params) | {"limit": str(min(most or PAGE_MOST, PAGE_MOST))}
    async with aclosing(pages(url, HISTORY_PATH, query, token, "after", "after")) as answers:
        async for answer in answers:
            entries = answer["entries"][:left]
            yield entries, answer
            if left is not None:
                left -= len(entries)
                if left <= 0:
                    return


async def read_back(
    url: str, params: Mapping[str, str], token: TokenSource, most: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The `most` newest entries before `params`' `before` (or the newest of all), oldest
    first, and the last answer read (its `start` and `lost_before_start`)."""
    found: list[dict[str, Any]] = []
    answer: dict[str, Any] = {}
    query = dict(params) | {"limit": str(min(most, PAGE_MOST))}
    async with aclosing(pages(url, HISTORY_PATH, query, token, "before", "before")) as answers:
        async for answer in answers:
            found[:0] = answer["entries"]
            if len(found) >= most:
                break
    return found[-most:], answer


async def print_forward(
    url: str, params: Mapping[str, str], token: TokenSource, printer: Printer, most: int | None
) -> str:
    """Print history from `params`' `after` or `since` on, gaps as notices; returns the
    cursor after the last entry printed (where a live stream goes on)."""
    after = ""
    async with aclosing(read_forward(url, params, token, most)) as answers:
        async for entries, answer in answers:
            for gap in answer["gaps"]:
                lost, channel, reason = gap["lost"], gap["channel"], gap["reason"]
                printer.notice(f"gap: {lost} entries lost on {channel} ({reason})")
            for data in entries:
                printer.entry(data.pop("id"), data)
            whole = len(entries) == len(answer["entries"])
            after = answer["after"] if whole else entries[-1]["id"]
    return after


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def since_time(text: str, now: float | None = None) -> str:
    """`--since`: a duration back from now (`30s`, `10m`, `2h`, `1d`) or an ISO 8601 time
    (UTC unless it says otherwise: `2026-12-07T10:00Z`), as the RFC 3339 UTC time the
    gateway takes. ValueError names what is wrong."""
    text = text.strip()
    if text[:-1].isdigit() and text[-1:] in _UNITS:
        seconds = int(text[:-1]) * _UNITS[text[-1]]
        at = dt.datetime.fromtimestamp((now or time.time()) - seconds, dt.UTC)
    else:
        try:
            at = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is neither a duration like 10m, 2h, 1d nor a time like 2026-12-07T10:00Z"
            ) from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
