"""What two gateway processes on one shared broker must do as one, run by each shared
broker's module (tests/test_redis_gateways.py, tests/test_nats_gateways.py): its tokens,
and the checks both hold their broker to."""

from __future__ import annotations

from collections.abc import Sequence

from tests.conftest import Running, entry
from tests.sse_client import Event, open_stream


def tokens(run: Running) -> tuple[str, str]:
    """(publisher, subscriber) tokens; every gateway accepts those of the others."""
    return run.token("svc", publish=["logs:>"]), run.token("reader", subscribe=["logs:>"])


def messages(events: Sequence[Event]) -> list[str]:
    return [e.data["message"] for e in events]


def newest(events: Sequence[Event]) -> str:
    """The cursor of the newest of `events` (by seq: on NATS a batch's channels are stored
    one after another, so they may arrive in another order)."""
    return max(events, key=lambda e: int(e.id.rsplit("-", 1)[1])).id


async def published_on_one_reaches_subscribers_on_both(
    a: Running, b: Running, etl: str, etl_too: str, faas: str
) -> None:
    """A batch to `etl`, `faas` and `etl_too` (both under `logs:etl:>`) published on `a`
    reaches the subscribers of either gateway, with the same ids and data."""
    pub, sub = tokens(a)
    async with (
        open_stream(a.http, "logs:etl:>", sub) as on_a,
        open_stream(b.http, "logs:etl:>", sub) as on_b,
        open_stream(b.http, faas, sub) as faas_on_b,
    ):
        for stream in (on_a, on_b, faas_on_b):
            await stream.next()
        batch = [entry(etl, "one"), entry(faas, "f"), entry(etl_too, "two")]
        await a.publish(pub, [batch], producer="cross")
        from_a, from_b = await on_a.take(2), await on_b.take(2)
        assert messages(from_b) == ["one", "two"]
        assert [(e.id, e.data) for e in from_b] == [(e.id, e.data) for e in from_a]
        assert messages(await faas_on_b.take(1)) == ["f"]


async def a_cursor_from_one_resumes_exactly_on_the_other(
    a: Running, b: Running, etl: str, other: str, faas: str
) -> None:
    """A cursor taken on `a` resumes on `b` with exactly what followed it on the channels
    asked for (not `other`'s), then live."""
    pub, sub = tokens(a)
    async with open_stream(a.http, f"{etl},{faas}", sub) as stream:
        await stream.next()
        await a.publish(pub, [[entry(etl, "m0"), entry(faas, "m1")]], producer="resume")
        cursor = newest(await stream.take(2))
    missed = [[entry(etl, "m2")], [entry(other, "x")], [entry(faas, "m3")]]
    await b.publish(pub, missed, producer="resume", first_seq=2)
    async with open_stream(b.http, f"{etl},{faas}", sub, last_event_id=cursor) as stream:
        await stream.next()
        assert messages(await stream.take(2)) == ["m2", "m3"]
        await a.publish(pub, [[entry(etl, "live")]], producer="resume", first_seq=5)
        assert messages(await stream.take(1)) == ["live"]
