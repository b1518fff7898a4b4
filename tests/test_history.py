"""GET /api/logs/history: pages of retained entries back to the start of history, forward
from a cursor, and from a time; rights as for streams; bad queries named."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from gateway.core.events import format_time
from tests.conftest import Running, entry, running_gateway

ETL = "logs:etl:workspace123:workflow456"
FAAS = "logs:faas:workspace123:function789"
BASE_NS = 1_796_000_000_000_000_000


async def history(run: Running, token: str, **query: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{run.http}/api/logs/history", params=query, headers=headers) as r,
    ):
        return r.status, await r.json()


async def publish(run: Running, count: int, producer: str = "h") -> None:
    """`count` entries alternating between ETL and FAAS, stamped a second apart."""
    batch = []
    for i in range(count):
        e = entry(ETL if i % 2 == 0 else FAAS, f"m{i}")
        e.time_unix_nano = BASE_NS + i * 1_000_000_000
        batch.append(e)
    await run.publish(run.token(publish=["logs:>"]), [batch], producer)


async def test_pages_back_from_the_newest_to_the_start_of_history(gw: Running) -> None:
    await publish(gw, 25)
    token = gw.token(subscribe=["logs:*:workspace123:>"])
    status, page = await history(gw, token, channels="logs:*:workspace123:>", limit="10")
    assert status == 200
    assert [e["message"] for e in page["entries"]] == [f"m{i}" for i in range(15, 25)]
    assert page["start"] is False and page["end"] is True
    assert page["entries"][0]["id"] == page["before"]
    seen = page["entries"]
    while page["before"] is not None:
        query = {"channels": "logs:*:workspace123:>", "limit": "10", "before": page["before"]}
        status, page = await history(gw, token, **query)
        seen = page["entries"] + seen
    assert [e["message"] for e in seen] == [f"m{i}" for i in range(25)]
    assert page["start"] is True and page["lost_before_start"] == 0
    assert len(page["entries"]) == 5


async def test_the_start_says_how_many_entries_before_it_are_gone() -> None:
    async with running_gateway(history_entries=4) as run:
        await publish(run, 20)
        token = run.token(subscribe=["logs:>"])
        status, page = await history(run, token, channels="logs:>", limit="100")
        assert status == 200 and page["start"] is True and page["before"] is None
        assert [e["message"] for e in page["entries"]] == [f"m{i}" for i in range(12, 20)]
        assert page["lost_before_start"] == 12
        [gap] = page["gaps_before_start"]
        assert (gap["lost"], gap["reason"], gap["channels"]) == (12, "trimmed", 2)


async def test_reads_forward_from_a_cursor_then_from_where_it_stopped(gw: Running) -> None:
    await publish(gw, 12)
    token = gw.token(subscribe=[ETL])
    status, newest = await history(gw, token, channels=ETL, limit="1")
    status, first = await history(
        gw, token, channels=ETL, limit="3", after=f"{newest['after'].split('-')[0]}-0"
    )
    assert status == 200 and [e["message"] for e in first["entries"]] == ["m0", "m2", "m4"]
    assert first["end"] is False and first["after"] == first["entries"][-1]["id"]
    status, rest = await history(gw, token, channels=ETL, limit="10", after=first["after"])
    assert [e["message"] for e in rest["entries"]] == ["m6", "m8", "m10"]
    assert rest["end"] is True and rest["after"] == newest["after"]


async def test_since_starts_at_the_first_entry_stamped_at_that_time(gw: Running) -> None:
    await publish(gw, 30)
    token = gw.token(subscribe=["logs:>"])
    since = format_time(BASE_NS + 17 * 1_000_000_000)
    status, page = await history(gw, token, channels="logs:>", since=since, limit="5")
    assert status == 200
    assert [e["message"] for e in page["entries"]] == [f"m{i}" for i in range(17, 22)]
    status, page = await history(gw, token, channels=FAAS, since=since, level="info")
    assert [e["message"] for e in page["entries"]] == [f"m{i}" for i in range(17, 30, 2)]
    late = format_time(BASE_NS + 100 * 1_000_000_000)
    status, page = await history(gw, token, channels="logs:>", since=late)
    assert (status, page["entries"], page["end"]) == (200, [], True)


async def test_rights_are_checked_as_for_a_stream(gw: Running) -> None:
    status, body = await history(gw, gw.token(subscribe=[FAAS]), channels="logs:*:workspace123:>")
    assert (
        status == 403 and "may not subscribe to 'logs:*:workspace123:>'" in body["error"]["message"]
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "'channels' must name at least one channel"),
        ({"before": "x-1", "after": "x-2"}, "'before' and 'after': give at most one of them"),
        ({"since": "10m"}, "'since': '10m' must be an RFC 3339 UTC time"),
        ({"limit": "1001"}, "'limit' must be a whole number from 1 to 1000"),
        ({"after": "zz-3"}, "from a history this gateway no longer holds"),
        ({"level": "loud"}, "loud"),
    ],
)
async def test_bad_queries_are_refused_by_name(
    gw: Running, query: dict[str, str], message: str
) -> None:
    query = {"channels": ETL} | query if query else query
    status, body = await history(gw, gw.token(subscribe=["logs:>"]), **query)
    assert status == 400 and message in body["error"]["message"]
