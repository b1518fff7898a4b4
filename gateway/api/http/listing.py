"""GET /api/logs/channels: the channels holding entries that the token may open, newest
activity first, a page at a time (channel discovery, for the page's picker and the CLI)."""

from __future__ import annotations

from aiohttp import web

from gateway.api.http.auth import TokenPolicy, principal_of, requires_token
from gateway.core.broker import Broker
from gateway.core.channels import parse_pattern
from gateway.core.cursor import encode_cursor
from gateway.core.discovery import visible
from gateway.core.errors import denied, invalid
from gateway.core.events import format_time
from gateway.core.history import position

LIST_DEFAULT = 100  # channels a page lists unless `limit` says
LIST_MOST = 1_000  # the most one page lists (what one answer costs)


def parse_limit(text: str | None, default: int, most: int) -> int:
    """`limit=N`: how many items one page holds, 1 to `most`."""
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 9 or not 1 <= int(text) <= most:
        raise invalid(f"query parameter 'limit' must be a whole number from 1 to {most}")
    return int(text)


class ChannelsHandler:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    @requires_token(TokenPolicy(allow_cookie=True))
    async def handle(self, request: web.Request) -> web.Response:
        principal = principal_of(request)
        wanted = parse_pattern(request.query.get("pattern") or ">")
        limit = parse_limit(request.query.get("limit"), LIST_DEFAULT, LIST_MOST)
        epoch = self._broker.epoch
        before = position(request.query.get("before"), "before", epoch)
        patterns = visible(principal, wanted)
        if not patterns:
            raise denied(
                f"token {principal.subject!r} may not subscribe to any channel of {wanted.text!r}"
            )
        page = await self._broker.channels(patterns, before, limit)
        listed = [
            {
                "channel": c.name,
                "entries": c.entries,
                "last_activity": format_time(int(c.stored_at * 1e9)),
                "cursor": encode_cursor(epoch, c.newest),
            }
            for c in page
        ]
        more = len(page) == limit
        return web.json_response(
            {"channels": listed, "next": listed[-1]["cursor"] if more else None}
        )
