"""Channel discovery: GET /api/logs/channels lists what a token may open, and
`intersect`/`visible` never widen a token's rights."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from gateway.core.channels import parse_pattern
from gateway.core.discovery import intersect, visible
from gateway.core.tokens import Principal
from tests.conftest import Running, entry

ETL = "logs:etl:workspace123:workflow456"
FAAS = "logs:faas:workspace123:function789"
ANALYTICS = "logs:analytics:workspace123"
OTHER = "logs:etl:workspace999:wf1"


async def get(gw: Running, token: str, **query: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gw.http}/api/logs/channels", params=query, headers=headers) as r,
    ):
        return r.status, await r.json()


async def publish_demo(gw: Running) -> None:
    pub = gw.token(publish=["logs:>"])
    await gw.publish(pub, [[entry(ETL, "e1"), entry(OTHER, "o1"), entry(ETL, "e2")]], "a")
    await gw.publish(pub, [[entry(FAAS, "f1")], [entry(ANALYTICS, "a1")]], "b")


async def test_lists_the_channels_a_token_may_open_newest_activity_first(gw: Running) -> None:
    await publish_demo(gw)
    token = gw.token(subscribe=["logs:*:workspace123", "logs:*:workspace123:>"])
    status, body = await get(gw, token)
    assert status == 200
    rows = body["channels"]
    assert [(r["channel"], r["entries"]) for r in rows] == [(ANALYTICS, 1), (FAAS, 1), (ETL, 2)]
    assert body["next"] is None
    assert rows[0]["last_activity"].endswith("Z") and rows[0]["cursor"].count("-") == 1
    # A narrower pattern lists its part only.
    status, body = await get(gw, token, pattern="logs:etl:>")
    assert [r["channel"] for r in body["channels"]] == [ETL]


async def test_pages_by_activity_with_the_cursor_of_the_last_row(gw: Running) -> None:
    await publish_demo(gw)
    token = gw.token(subscribe=["logs:>"])
    listed: list[str] = []
    query = {"pattern": "logs:>", "limit": "2"}
    while True:
        status, body = await get(gw, token, **query)
        assert status == 200 and len(body["channels"]) <= 2
        listed += [r["channel"] for r in body["channels"]]
        if body["next"] is None:
            break
        query["before"] = body["next"]
    assert listed == [ANALYTICS, FAAS, ETL, OTHER]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"pattern": "logs:>:x"}, "'>' may only be the last segment"),
        ({"limit": "0"}, "'limit' must be a whole number from 1 to 1000"),
        ({"limit": "1001"}, "'limit' must be a whole number from 1 to 1000"),
        ({"before": "nope"}, "is not a cursor this gateway issued"),
        ({"before": "zz0-5"}, "from a history this gateway no longer holds"),
    ],
)
async def test_bad_queries_are_refused_by_name(
    gw: Running, query: dict[str, str], message: str
) -> None:
    status, body = await get(gw, gw.token(subscribe=["logs:>"]), **query)
    assert status == 400 and message in body["error"]["message"]


async def test_a_token_without_any_part_of_the_pattern_is_refused(gw: Running) -> None:
    status, body = await get(gw, gw.token(subscribe=["logs:faas:>"]), pattern="logs:etl:>")
    assert (
        status == 403
        and "may not subscribe to any channel of 'logs:etl:>'" in (body["error"]["message"])
    )
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gw.http}/api/logs/channels") as r,
    ):
        assert r.status == 401


@pytest.mark.parametrize(
    ("a", "b", "both"),
    [
        ("logs:>", "logs:*:ws1:>", "logs:*:ws1:>"),
        ("logs:etl:>", "logs:*:ws1:>", "logs:etl:ws1:>"),
        ("logs:etl:*", "logs:*:ws1", "logs:etl:ws1"),
        (">", "logs:a", "logs:a"),
        ("logs:>", "logs:>", "logs:>"),
        ("logs:*:ws1", "logs:etl:>", "logs:etl:ws1"),
        ("logs:etl:ws1", "logs:faas:>", None),
        ("logs:*", "logs:*:x", None),
        ("logs:a:>", "logs:a", None),
    ],
)
def test_intersect_matches_exactly_what_both_match(a: str, b: str, both: str | None) -> None:
    for x, y in ((a, b), (b, a)):
        found = intersect(parse_pattern(x), parse_pattern(y))
        assert (found.text if found else None) == both


def test_visible_never_widens_a_tokens_rights() -> None:
    grant = (parse_pattern("logs:*:ws1:>"), parse_pattern("logs:faas:ws2"))
    who = Principal("alice", (), grant, False, 0.0, "t")
    assert [p.text for p in visible(who, parse_pattern(">"))] == ["logs:*:ws1:>", "logs:faas:ws2"]
    assert [p.text for p in visible(who, parse_pattern("logs:etl:ws1:wf1"))] == ["logs:etl:ws1:wf1"]
    assert visible(who, parse_pattern("logs:etl:ws2:>")) == []


def test_visible_leaves_out_a_part_another_covers() -> None:
    # Each channel is visited once: logs:etl:ws1:> adds none that logs:*:ws1:> lacks.
    grant = (parse_pattern("logs:etl:ws1:>"), parse_pattern("logs:*:ws1:>"))
    who = Principal("alice", (), grant, False, 0.0, "t")
    assert [p.text for p in visible(who, parse_pattern(">"))] == ["logs:*:ws1:>"]
    assert [p.text for p in visible(who, parse_pattern("logs:etl:>"))] == ["logs:etl:ws1:>"]
