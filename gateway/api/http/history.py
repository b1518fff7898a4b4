"""GET /api/logs/history: a page of retained entries before or after a cursor, or from a
time, as JSON with the cursors to go on from (gateway/core/history.py). Rights as for a
stream: every pattern asked for must be one the token may subscribe to."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from gateway.api.http.auth import TokenPolicy, principal_of, requires_token
from gateway.api.http.listing import parse_limit, parse_position
from gateway.api.http.stream import parse_channels, parse_level
from gateway.core import history
from gateway.core.broker import Broker, Gap
from gateway.core.cursor import Cursor, encode_cursor
from gateway.core.errors import invalid
from gateway.core.events import parse_time

HISTORY_DEFAULT = 200  # entries an answer holds unless `limit` says


class HistoryHandler:
    def __init__(self, broker: Broker, max_channels: int, turns: asyncio.Semaphore) -> None:
        self._broker = broker
        self._max_channels = max_channels
        self._turns = turns

    @requires_token(TokenPolicy(allow_cookie=True))
    async def handle(self, request: web.Request) -> web.Response:
        principal = principal_of(request)
        query = request.query
        patterns = parse_channels(query.get("channels", ""), self._max_channels)
        for pattern in patterns:
            principal.check_subscribe(pattern)
        level = parse_level(query.get("level"))
        limit = parse_limit(query.get("limit"), HISTORY_DEFAULT, history.HISTORY_MOST)
        given = [name for name in ("before", "after", "since") if query.get(name)]
        if len(given) > 1:
            raise invalid(f"query parameters {' and '.join(given)}: give at most one of them")
        epoch, args = self._broker.epoch, (limit, level, self._turns)
        if given == ["after"]:
            seq = parse_position(query["after"], "after", epoch)
            window = await history.after(self._broker, patterns, Cursor(epoch, seq or 0), *args)
        elif given == ["since"]:
            time_ns = _parse_since(query["since"])
            seq = await history.seq_at(self._broker, patterns, time_ns, level)
            window = await history.after(self._broker, patterns, Cursor(epoch, seq), *args)
        else:
            seq = parse_position(query.get("before"), "before", epoch)
            window = await history.before(self._broker, patterns, seq, *args)
        return web.Response(body=_body(epoch, window), content_type="application/json")


def _parse_since(text: str) -> int:
    try:
        return parse_time(text)
    except ValueError:
        raise invalid(
            f"query parameter 'since': {text[:80]!r} must be an RFC 3339 UTC time like "
            "2026-12-07T10:00:00Z"
        ) from None


def _gap(epoch: str, gap: Gap) -> dict[str, Any]:
    return {
        "channel": gap.pattern,
        "lost": gap.lost,
        "reason": gap.reason,
        "channels": gap.channels,
        "id": encode_cursor(epoch, gap.seq),
    }


def _body(epoch: str, window: history.Window) -> bytes:
    """The answer: each entry's stored JSON line with its `id` in front (not decoded and
    encoded again), and the cursors to go on from."""
    prefix = f'{{"id":"{epoch}-'.encode()
    entries = b",".join(b'%b%d",' % (prefix, e.seq) + e.data[1:] for e in window.events)
    rest = {
        "gaps": [_gap(epoch, g) for g in window.gaps],
        "before": encode_cursor(epoch, window.older) if window.older is not None else None,
        "after": encode_cursor(epoch, window.newer),
        "start": window.start,
        "end": window.end,
        "lost_before_start": sum(g.lost for g in window.lost) if window.start else None,
        "gaps_before_start": [_gap(epoch, g) for g in window.lost],
    }
    return b'{"entries":[' + entries + b"]," + orjson.dumps(rest)[1:]
