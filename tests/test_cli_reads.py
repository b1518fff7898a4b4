"""The read verbs as users run them against a real gateway process: `logs-gateway channels`
(and, below, `history`)."""

from __future__ import annotations

import asyncio
import json
import re

from gateway.core.events import format_time
from tests.conftest import Running, entry
from tests.test_cli_clients import cli, cli_process, read_line


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


HIST = "logs:hist:ws1:run1"
BASE_NS = 1_796_000_000_000_000_000


def minutes_in(n: int) -> str:
    """The time of the nth stamped entry, as a person types it (UTC, to the second)."""
    return format_time(BASE_NS + n * 60_000_000_000)[:19] + "Z"


async def publish_stamped(run: Running, channel: str, count: int) -> None:
    batch = []
    for i in range(count):
        e = entry(channel, f"h{i}")
        e.time_unix_nano = BASE_NS + i * 60_000_000_000  # a minute apart
        batch.append(e)
    await run.publish(run.token(publish=[channel]), [batch], f"cli-{channel}")


async def test_history_prints_a_range_then_exits(gw_process: Running) -> None:
    await publish_stamped(gw_process, HIST, 12)
    connection = ("--url", gw_process.http, "--token", gw_process.token(subscribe=[HIST]))

    async def run(*args: str) -> list[dict[str, str]]:
        result = await asyncio.to_thread(cli, "history", HIST, "--json", *args, *connection)
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    newest = await run("-n", "3")
    assert [e["message"] for e in newest] == ["h9", "h10", "h11"]
    before = await run("--before", newest[0]["id"], "-n", "2")
    assert [e["message"] for e in before] == ["h7", "h8"]
    after = await run("--after", before[0]["id"])
    assert [e["message"] for e in after] == [f"h{i}" for i in range(8, 12)]
    since = await run("--since", minutes_in(4), "-n", "2")
    assert [e["message"] for e in since] == ["h4", "h5"]
    text = await asyncio.to_thread(cli, "history", HIST, "-n", "1", *connection)
    assert text.stdout.split(" ", 1)[1] == f"INFO  {HIST} [tester] h11\n"
    bad = await asyncio.to_thread(cli, "history", HIST, "--since", "yesterday", *connection)
    assert bad.returncode == 2 and "'yesterday' is neither a duration like 10m" in bad.stderr


async def test_tail_since_prints_from_that_time_then_follows(gw_process: Running) -> None:
    channel = "logs:hist:ws1:follow"
    await publish_stamped(gw_process, channel, 6)
    connection = ("--url", gw_process.http, "--token", gw_process.token(subscribe=[channel]))
    async with cli_process(
        "tail", channel, "--since", minutes_in(3), "--json", *connection
    ) as follow:
        shown = [json.loads(await read_line(follow.stdout))["message"] for _ in range(3)]
        assert (await read_line(follow.stderr)).startswith(f"-- following {channel}")
        pub = gw_process.token(publish=[channel])
        await gw_process.publish(pub, [[entry(channel, "live")]], "cli-follow-live")
        live = json.loads(await read_line(follow.stdout))["message"]
    assert (shown, live) == (["h3", "h4", "h5"], "live")
