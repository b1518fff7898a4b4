"""The client verbs as users run them: `logs-gateway simulate|publish|tail` against real
gateways, plus their --help and their answer to bad flags."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from logs_gateway.simulate import CHANNELS, SOURCES
from logs_gateway.tail import Printer, tail

from gateway.app import config as cfg
from gateway.app.cli import build_parser, main
from tests.conftest import SECRET, Running, entry, free_port, wait_for
from tests.sse_client import open_stream
from tests.tcp_proxy import tcp_proxy

CH = "logs:etl:workspace123:workflow456"
LEVELS = {"trace", "debug", "info", "warn", "error", "fatal"}


def client_env(**extra: str) -> dict[str, str]:
    """The environment of a client process: no LOGS_GATEWAY_* from outside the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(cfg.ENV_PREFIX)}
    return env | extra


def cli(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        input=stdin,
        env=client_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextlib.asynccontextmanager
async def cli_process(*args: str, **env: str) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        env=client_env(**env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def read_line(stream: asyncio.StreamReader | None, timeout: float = 20.0) -> str:
    assert stream is not None
    return (await asyncio.wait_for(stream.readline(), timeout)).decode().rstrip("\n")


@pytest.mark.parametrize("verb", ["simulate", "publish", "tail"])
def test_help_explains_every_verb(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([verb, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: logs-gateway {verb}" in text
    # each verb lists the address it uses: tail the HTTP URL, the others the gRPC target
    uses, other = ("--url", "--target") if verb == "tail" else ("--target", "--url")
    for flag in ("--token", uses, "LOGS_GATEWAY_TOKEN"):
        assert flag in text
    assert other not in text


DEMO_CHANNELS = (
    "logs:etl:workspace123:workflow456",
    "logs:faas:workspace123:function789",
    "logs:analytics:workspace123",
)


@pytest.mark.parametrize("verb", ["tail", "channels", "history"])
def test_help_explains_the_pattern_syntax(
    verb: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where a user types a pattern, its help says what `*` and `>` match, on channels the
    # demo really has (issue 25: the syntax was only in docs/DESIGN.md).
    monkeypatch.setenv("COLUMNS", "100")  # a narrow terminal would break channel names
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal
    assert "'*' is any one segment" in text
    assert "'>' (last) any one or more" in text
    for channel in DEMO_CHANNELS:
        assert channel in text
    assert "'logs:*:workspace123' 'logs:*:workspace123:>'" in text


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["simulate", "etl", "--interval", "soon"], "argument --interval: 'soon' is not a number"),
        (["simulate", "payroll"], "argument service: invalid choice: 'payroll'"),
        (["simulate", "faas", "--count", "-3"], "argument --count: '-3' must be 0 or more"),
        (["publish", "logs:a:b", "m", "--attr", "x"], "argument --attr: 'x' is not KEY=VALUE"),
        (["publish", "logs:a:b", "m", "--level", "loud"], "argument --level: invalid choice"),
        (["tail"], "the following arguments are required: CHANNEL_OR_PATTERN"),
        (["tail", "logs:>", "--colour"], "unrecognized arguments: --colour"),
        (["tail", "logs:>", "--target", "h:1"], "unrecognized arguments: --target h:1"),
        (["serve", "--htp-port", "3"], "unrecognized arguments: --htp-port 3"),
        (
            ["tail", "logs:>", "-n", "-1"],
            "argument -n/--lines: must be a whole number of at least 0",
        ),
    ],
)
def test_bad_flags_give_one_error_line_and_exit_2(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    # the verb's parser answers, and points at the verb's own --help
    assert re.fullmatch(
        rf"logs-gateway {argv[0]}: error: {re.escape(expected)}.* \(see logs-gateway "
        rf"{argv[0]} --help\)",
        err.splitlines()[-1],
    )
    assert "Traceback" not in err


def test_without_a_token_or_a_key_the_error_says_what_to_set() -> None:
    result = cli("publish", CH, "hello")
    assert result.returncode == 2
    assert result.stderr.startswith("logs-gateway: no token: pass --token or set")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("service", sorted(CHANNELS))
async def test_each_simulator_publishes_to_its_channel(service: str, gw_process: Running) -> None:
    channel = CHANNELS[service]
    sub = gw_process.token(subscribe=["logs:>"])
    async with open_stream(gw_process.http, "logs:>", sub) as stream:
        await stream.next()
        result = await asyncio.to_thread(
            cli,
            *("simulate", service, "--count", "15", "--interval", "0", "--seed", "7"),
            *("--target", gw_process.grpc_target),
            LOGS_GATEWAY_JWT_SECRET=SECRET,  # no --token: the verb mints its own
        )
        assert result.returncode == 0, result.stderr
        events = await stream.take(15)
    assert {e.data["channel"] for e in events} == {channel}
    assert {e.data["source"] for e in events} == {SOURCES[service]}
    assert {e.data["level"] for e in events} <= LEVELS
    assert len({e.data["message"] for e in events}) >= 10  # varied, not one line repeated
    assert f"published 15 entries to {channel}" in result.stderr


async def test_publish_sends_stdin_lines_and_reports_refusals(gw_process: Running) -> None:
    token = gw_process.token("cli", publish=[CH])
    target = ("--target", gw_process.grpc_target, "--token", token)
    async with open_stream(gw_process.http, CH, gw_process.token(subscribe=[CH])) as stream:
        await stream.next()
        result = await asyncio.to_thread(
            cli, "publish", CH, "--level", "warn", "--attr", "rows=12", *target, stdin="a\n\nb\n"
        )
        assert result.returncode == 0, result.stderr
        events = await stream.take(2)
    assert [e.data["message"] for e in events] == ["a", "b"]
    assert f"published 2 entries to {CH}" in result.stderr
    one = await asyncio.to_thread(cli, "publish", CH, "one", *target)
    assert f"published 1 entry to {CH}" in one.stderr
    assert events[0].data["level"] == "warn"
    assert events[0].data["attributes"] == {"rows": 12}
    refused = await asyncio.to_thread(cli, "publish", "logs:faas:ws:fn", "hi", *target)
    assert refused.returncode == 1
    assert refused.stderr.startswith("logs-gateway publish: ")
    assert "may not publish to 'logs:faas:ws:fn'" in refused.stderr


def test_level_is_spelled_warn_or_warning_in_the_client_verbs_as_in_serve() -> None:
    for spelling in ("warn", "warning", "WARNING"):
        parsed = build_parser().parse_args(["tail", "logs:>", "--level", spelling])
        assert parsed.level == "warn"
        assert cfg.load(env={"LOGS_GATEWAY_LOG_LEVEL": spelling}).log_level == "warning"


def test_tail_names_an_unreachable_gateway_and_its_cause_then_exits() -> None:
    """As publish does: a wrong --url is said at once, not retried for ever, and the cause
    reads as a sentence (no exception class names)."""
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("tail", CH, "--url", url, "--token", "a.b.c")
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert last == f"logs-gateway tail: cannot reach {url}: connection refused"
    assert not re.search(r"\b[A-Z]\w*(Error|Exception)\b", result.stderr)


async def test_tail_names_its_own_flag_when_asked_for_more_lines_than_the_gateway_sends(
    gw_process: Running,
) -> None:
    connection = ("--url", gw_process.http, "--token", gw_process.token(subscribe=[CH]))
    result = await asyncio.to_thread(cli, "tail", CH, "-n", "5000", *connection)
    assert result.returncode == 1
    assert result.stderr.startswith("logs-gateway tail: -n 5000 is more than the gateway sends")


def test_publish_names_an_unreachable_gateway_and_its_cause() -> None:
    target = f"127.0.0.1:{free_port()}"
    result = cli("publish", CH, "hello", "--target", target, "--token", "a.b.c")
    assert result.returncode == 1
    # named after CONNECT_TIMEOUT, not "1 entries not acknowledged" after CLOSE_TIMEOUT
    assert result.stderr == f"logs-gateway publish: cannot reach {target}: connection refused\n"


async def test_tail_prints_entries_and_resumes_from_an_id(gw_process: Running) -> None:
    connection = ("--url", gw_process.http, "--token", gw_process.token(subscribe=[CH]))
    pub = gw_process.token(publish=[CH])
    async with cli_process("tail", CH, "--json", "-n", "0", *connection) as follow:
        assert (await read_line(follow.stderr)).startswith(f"-- following {CH}")
        await gw_process.publish(pub, [[entry(CH, f"tail {i}") for i in range(3)]], "tail-test")
        lines = [json.loads(await read_line(follow.stdout)) for _ in range(3)]
    assert [line["message"] for line in lines] == ["tail 0", "tail 1", "tail 2"]
    async with cli_process("tail", CH, "--since-id", lines[0]["id"], *connection) as resumed:
        shown = [await read_line(resumed.stdout) for _ in range(2)]
    assert [line.split(" ", 1)[1] for line in shown] == [
        f"INFO  {CH} [tester] tail 1",
        f"INFO  {CH} [tester] tail 2",
    ]


async def test_tail_shows_the_last_lines_first_then_follows(gw_process: Running) -> None:
    channel = "logs:etl:ws:recent"
    connection = ("--url", gw_process.http, "--token", gw_process.token(subscribe=[channel]))
    pub = gw_process.token(publish=[channel])
    await gw_process.publish(pub, [[entry(channel, f"old {i}") for i in range(15)]], "recent")
    async with cli_process("tail", channel, "--json", "-n", "4", *connection) as follow:
        first = [json.loads(await read_line(follow.stdout))["message"] for _ in range(4)]
        await gw_process.publish(pub, [[entry(channel, "new")]], "recent-2")
        following = json.loads(await read_line(follow.stdout))["message"]
    assert first == ["old 11", "old 12", "old 13", "old 14"]
    assert following == "new"
    async with cli_process("tail", channel, "--json", *connection) as default:  # as tail(1): 10
        shown = [json.loads(await read_line(default.stdout))["message"] for _ in range(10)]
    assert shown == [*(f"old {i}" for i in range(6, 15)), "new"]


async def test_tail_reconnects_through_dropped_connections_without_loss_or_repeats(
    gw: Running,
) -> None:
    out, err = io.StringIO(), io.StringIO()
    printer = Printer(json_output=True, out=out, err=err)
    pub = gw.token(publish=[CH])
    async with tcp_proxy(gw.http.removeprefix("http://")) as proxy:
        url = f"http://{proxy.address}"
        follow = asyncio.create_task(tail(url, [CH], gw.token(subscribe=[CH]), printer))
        await wait_for(lambda: proxy.connections == 1 and "following" in err.getvalue())
        for r in range(4):
            await gw.publish(pub, [[entry(CH, f"e{r}-{i}") for i in range(50)]], f"p{r}")
            proxy.drop()
            await wait_for(lambda r=r: proxy.connections >= r + 2)
        # Published last: anything shown twice has been shown once the marker is.
        await gw.publish(pub, [[entry(CH, "the last entry")]], "marker")
        await wait_for(lambda: '"the last entry"' in out.getvalue(), timeout=20)
        follow.cancel()
    messages = [json.loads(line)["message"] for line in out.getvalue().splitlines()]
    assert messages == [*(f"e{r}-{i}" for r in range(4) for i in range(50)), "the last entry"]
