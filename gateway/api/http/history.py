"""GET /api/logs/history: a page of retained entries before or after a cursor, or from a
time, as JSON with the cursors to go on from (gateway/core/history.py). Rights as for a
stream: every pattern asked for must be one the token may subscribe to."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from gateway.api.http.auth import TokenPolicy, principal_of, requires_token
from gateway.api.http.listing import parse_limit
from gateway.api.http.stream import parse_channels, parse_level
from gateway.core import history
from gateway.core.broker import Broker, Gap
from gateway.core.cursor import encode_cursor

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
        window = await history.read(self._broker, patterns, query, limit, level, self._turns)
        epoch = self._broker.epoch
        return web.Response(body=_body(epoch, window), content_type="application/json")


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
