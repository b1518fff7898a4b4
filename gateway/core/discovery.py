"""Channel discovery (GET /api/logs/channels): which channels hold entries a token may
open, newest activity first. The broker says what it holds (`Broker.channels`); this
module says which patterns to ask it for, so a token never learns of a channel it could not
subscribe to, and the broker visits only channels both the request and the token reach."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from gateway.core.channels import Pattern
from gateway.core.tokens import Principal

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A channel holding retained entries: how many, the seq of its newest (its activity,
    and the cursor a history read goes back from) and when that was stored (Unix seconds,
    the broker's clock)."""

    name: str
    entries: int
    newest: int
    stored_at: float


def newest_first(
    found: Iterable[T], newest: Callable[[T], int], before: int | None, limit: int
) -> list[T]:
    """The `limit` of `found` with the highest `newest` below `before` (None: any), highest
    first: a page of channels by activity, costing what matched and not what is held."""
    if before is not None:
        found = (each for each in found if newest(each) < before)
    return heapq.nlargest(limit, found, key=newest)


def intersect(a: Pattern, b: Pattern) -> Pattern | None:
    """The pattern matching exactly the channels both match (None: no channel does)."""
    out: list[str] = []
    for i, (x, y) in enumerate(zip(a.segments, b.segments, strict=False)):
        if x == ">" or y == ">":
            rest = (b.segments if x == ">" else a.segments)[i:]
            if rest == (">",) or x == y:
                out.append(">")
            else:
                out += rest
            return _pattern(out)
        if x != y and "*" not in (x, y):
            return None
        out.append(y if x == "*" else x)
    if len(a.segments) != len(b.segments):
        return None
    return _pattern(out)


def _pattern(segments: list[str]) -> Pattern:
    return Pattern(":".join(segments), tuple(segments))


def visible(principal: Principal, wanted: Pattern) -> list[Pattern]:
    """The parts of `wanted` the principal may subscribe to, as patterns to list (an admin,
    or a token whose rights cover `wanted`: all of it)."""
    if principal.admin or any(g.covers(wanted) for g in principal.subscribe):
        return [wanted]
    parts = {p.text: p for g in principal.subscribe if (p := intersect(wanted, g)) is not None}
    # A part another part covers adds no channel, only a second visit of its channels.
    return [
        p for p in parts.values() if not any(o is not p and o.covers(p) for o in parts.values())
    ]
