"""LogStream.History: a page of retained history over gRPC, as GET /api/logs/history
(gateway/core/history.py holds what a page is; this module, its request and answer)."""

from __future__ import annotations

import asyncio

from logs_gateway.v1 import logs_pb2 as pb

from gateway.api.convert import entry_to_proto, gap_to_proto
from gateway.core import history
from gateway.core.broker import Broker, Gap
from gateway.core.channels import parse_pattern
from gateway.core.cursor import encode_cursor
from gateway.core.errors import invalid
from gateway.core.events import level_severity
from gateway.core.tokens import Principal

DEFAULT_LIMIT = 200


async def history_page(
    broker: Broker,
    principal: Principal,
    request: pb.HistoryRequest,
    max_channels: int,
    turns: asyncio.Semaphore,
) -> pb.HistoryPage:
    """The page `request` asks for; GatewayError (or ValueError, for a level) names a bad
    request or a channel the token may not subscribe to."""
    patterns = tuple(parse_pattern(c) for c in dict.fromkeys(request.channels))
    if not patterns or len(patterns) > max_channels:
        raise invalid(f"name 1 to {max_channels} channels")
    for pattern in patterns:
        principal.check_subscribe(pattern)
    if request.limit > history.HISTORY_MOST:
        raise invalid(f"limit must be from 0 to {history.HISTORY_MOST}")
    floor = level_severity(request.min_level) if request.min_level else 0
    where = {"before": request.before, "after": request.after, "since": request.since}
    limit = request.limit or DEFAULT_LIMIT
    window = await history.read(broker, patterns, where, limit, floor, turns)
    epoch = broker.epoch
    page = pb.HistoryPage(
        after=encode_cursor(epoch, window.newer), start=window.start, end=window.end
    )
    if window.older is not None:
        page.before = encode_cursor(epoch, window.older)
    for item in window.page().in_order():
        cursor = encode_cursor(epoch, item.seq)
        if isinstance(item, Gap):
            page.events.append(pb.LogEvent(cursor=cursor, gap=gap_to_proto(item)))
        else:
            page.events.append(pb.LogEvent(cursor=cursor, entry=entry_to_proto(item)))
    page.lost_before_start.extend(gap_to_proto(g) for g in window.lost)
    return page
