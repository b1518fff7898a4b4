"""LogStream.History: the history pages of GET /api/logs/history over gRPC, rights as for
Subscribe, bad requests refused by name."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from logs_gateway.v1 import logs_pb2 as pb
from logs_gateway.v1 import logs_pb2_grpc as pb_grpc

from tests.conftest import Running, entry, running_gateway

ETL = "logs:etl:ws1:wf1"
FAAS = "logs:faas:ws1:fn1"


async def page(run: Running, token: str, **fields: Any) -> pb.HistoryPage:
    channel = grpc.aio.insecure_channel(run.grpc_target)
    run.channels.append(channel)
    stub = pb_grpc.LogStreamStub(channel)
    request = pb.HistoryRequest(**fields)
    answer: pb.HistoryPage = await stub.History(
        request, metadata=[("authorization", f"Bearer {token}")]
    )
    return answer


def messages(answer: pb.HistoryPage) -> list[str]:
    return [e.entry.entry.body for e in answer.events if e.HasField("entry")]


async def test_pages_back_to_the_start_and_says_what_is_gone() -> None:
    async with running_gateway(history_entries=4) as run:
        pub = run.token(publish=["logs:>"])
        await run.publish(pub, [[entry(ETL if i % 2 else FAAS, f"m{i}") for i in range(12)]])
        token = run.token(subscribe=["logs:*:ws1:>"])
        newest = await page(run, token, channels=["logs:*:ws1:>"], limit=5)
        assert messages(newest) == [f"m{i}" for i in range(7, 12)]
        assert (newest.start, newest.end, newest.before) == (False, True, newest.events[0].cursor)
        older = await page(run, token, channels=["logs:*:ws1:>"], before=newest.before)
        assert messages(older) == ["m4", "m5", "m6"]
        assert older.start and older.before == ""
        [gone] = older.lost_before_start
        assert (gone.channel, gone.lost, gone.reason, gone.channels) == (
            "logs:*:ws1:>",
            4,
            "trimmed",
            2,
        )
        forward = await page(run, token, channels=[ETL], after=older.events[0].cursor, limit=2)
        assert messages(forward) == ["m5", "m7"] and not forward.end


async def test_rights_and_bad_requests_are_refused_by_name(gw: Running) -> None:
    token = gw.token(subscribe=[FAAS])
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await page(gw, token, channels=[ETL])
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "may not subscribe to 'logs:etl:ws1:wf1'" in (denied.value.details() or "")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"channels": [FAAS], "limit": 5000}, "limit must be from 0 to 1000"),
        ({"channels": [FAAS], "before": "x-1", "since": "y"}, "give at most one of them"),
        ({"channels": [FAAS], "min_level": "loud"}, "loud"),
        ({"channels": []}, "name 1 to 32 channels"),
    ]
    for fields, message in cases:
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await page(gw, token, **fields)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (bad.value.details() or "")
