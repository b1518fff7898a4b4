"""The read verbs as users run them against a real gateway process: `logs-gateway channels`
(and, below, `history`)."""

from __future__ import annotations

import asyncio
import json
import re

from tests.conftest import Running, entry
from tests.test_cli_clients import cli


async def test_channels_prints_what_the_token_may_open_like_kubectl_get(
    gw_process: Running,
) -> None:
    pub = gw_process.token(publish=["logs:>"])
    await gw_process.publish(
        pub,
        [
            [entry("logs:disc:ws1:run1", "a"), entry("logs:disc:ws1:run1", "b")],
            [entry("logs:disc:ws2:run9", "hidden")],
            [entry("logs:disc:ws1:run2", "c")],
        ],
        "cli-channels",
    )
    token = gw_process.token(subscribe=["logs:disc:ws1:>"])
    connection = ("--url", gw_process.http, "--token", token)
    result = await asyncio.to_thread(cli, "channels", "logs:disc:>", *connection)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["CHANNEL", "ENTRIES", "LAST", "ACTIVITY", "CURSOR"]
    assert [r.split()[:2] for r in rows] == [
        ["logs:disc:ws1:run2", "1"],
        ["logs:disc:ws1:run1", "2"],
    ]
    assert all(re.fullmatch(r"\d+s ago", " ".join(r.split()[2:4])) for r in rows)
    as_json = await asyncio.to_thread(cli, "channels", "logs:disc:>", "--json", *connection)
    listed = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(r["channel"], r["entries"]) for r in listed] == [
        ("logs:disc:ws1:run2", 1),
        ("logs:disc:ws1:run1", 2),
    ]
    assert rows[0].split()[-1] == listed[0]["cursor"]


async def test_channels_says_when_there_is_nothing_and_names_a_refusal(
    gw_process: Running,
) -> None:
    token = gw_process.token(subscribe=["logs:none:>"])
    connection = ("--url", gw_process.http, "--token", token)
    empty = await asyncio.to_thread(cli, "channels", "logs:none:>", *connection)
    assert (empty.returncode, empty.stdout) == (0, "")
    assert empty.stderr == "no channel of 'logs:none:>' holds entries you may open\n"
    refused = await asyncio.to_thread(cli, "channels", "logs:etl:>", *connection)
    assert refused.returncode == 1
    assert refused.stderr == (
        "logs-gateway channels: token 'tester' may not subscribe to any channel of 'logs:etl:>'\n"
    )
