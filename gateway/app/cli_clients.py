"""The client verbs of `logs-gateway`: simulate, publish and tail (DESIGN §9).

Thin on purpose: flags, addresses and tokens here, the work in the SDK (`logs_gateway`).
Each verb takes --token (or LOGS_GATEWAY_TOKEN); without one, but with a signing key
configured locally (LOGS_GATEWAY_JWT_SECRET or LOGS_GATEWAY_JWT_PRIVATE_KEY), it mints a
short-lived token holding just the rights it needs, and a fresh one before that expires.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from logs_gateway import Options, Publisher, SyncPublisher
from logs_gateway.errors import LogsGatewayError
from logs_gateway.publisher import DEFAULT_TARGET, EntryFields
from logs_gateway.simulate import CHANNELS, SIMULATORS
from logs_gateway.simulate import run as run_simulation
from logs_gateway.sync import publish_lines
from logs_gateway.tail import DEFAULT_URL, Printer, tail
from logs_gateway.tokens import TokenSource

from gateway.app import config as cfg
from gateway.app import credentials
from gateway.app.config import ConfigError

CLIENT_VERBS = ("simulate", "publish", "tail")
LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
MINTED_TTL = 300.0  # seconds; the SDK asks for a new token before it runs out
CLOSE_TIMEOUT = 10.0  # how long publish/simulate wait for the last acks on exit
# How long publish tries to reach the gateway before it says so (a one-shot command, not
# a service that should buffer through a restart).
CONNECT_TIMEOUT = 3.0
PATTERNS_HELP = (
    "a pattern where '*' is any one segment and '>' (last) any one or more: the demo's "
    "logs:etl:workspace123:workflow456, logs:faas:workspace123:function789 and "
    "logs:analytics:workspace123 are all in 'logs:*:workspace123' 'logs:*:workspace123:>' "
    "(quote them from the shell)"
)
NO_CREDENTIALS = (
    "no token: pass --token or set LOGS_GATEWAY_TOKEN, or set LOGS_GATEWAY_JWT_SECRET "
    "(or LOGS_GATEWAY_JWT_PRIVATE_KEY) so the CLI can mint one"
)


def add_client_verbs(verbs: Any) -> None:
    """Add simulate, publish and tail to the `logs-gateway` subcommands."""
    _add_simulate(verbs)
    _add_publish(verbs)
    _add_tail(verbs)


def _add_simulate(verbs: Any) -> None:
    p = verbs.add_parser(
        "simulate",
        help="publish realistic entries of a simulated service",
        description="Publish realistic, varied entries of a simulated service over gRPC: "
        "an L5-ETL pipeline (etl), a functions runtime (faas) or an analytics engine.",
    )
    p.add_argument("service", choices=sorted(SIMULATORS), help="which service to simulate")
    p.add_argument(
        "--interval",
        type=_non_negative(float),
        default=1.0,
        metavar="SECONDS",
        help="mean pause between entries (default 1; 0 = as fast as possible)",
    )
    p.add_argument(
        "--count",
        type=_non_negative(int),
        default=0,
        metavar="N",
        help="stop after N entries (default 0: run until Ctrl-C)",
    )
    seeds = ", ".join(CHANNELS.values())
    p.add_argument("--channel", metavar="CH", help=f"channel (default per service: {seeds})")
    p.add_argument("--seed", type=int, help="random seed, for a repeatable run")
    _add_connection(p, "target")


def _add_publish(verbs: Any) -> None:
    p = verbs.add_parser(
        "publish",
        help="publish one entry, or each line of stdin",
        description="Publish one entry over gRPC, or each non-blank line of stdin "
        "(e.g. `my-job | logs-gateway publish logs:etl:ws1:wf1`).",
    )
    p.add_argument("channel", help="channel, e.g. logs:etl:workspace123:workflow456")
    p.add_argument("message", nargs="?", help="the message; omit it or pass - to read stdin")
    p.add_argument(
        "--level", type=_entry_level, choices=LEVELS, default="info", help="level (default info)"
    )
    p.add_argument(
        "--attr",
        action="append",
        type=_attribute,
        default=[],
        metavar="KEY=VALUE",
        help="an attribute (repeatable); whole numbers, decimals and true/false are typed",
    )
    p.add_argument("--source", default="", help="emitting service (default: token subject)")
    _add_connection(p, "target")


def _add_tail(verbs: Any) -> None:
    p = verbs.add_parser(
        "tail",
        help="follow channels live in the terminal, like kubectl logs -f",
        description="Follow channels live over the SSE stream, reconnecting on its own "
        "without losing or repeating entries. Entries on stdout, notices on stderr.",
    )
    p.add_argument(
        "channels",
        nargs="+",
        metavar="CHANNEL_OR_PATTERN",
        help="a channel, or " + PATTERNS_HELP,
    )
    p.add_argument(
        "--level", type=_entry_level, choices=LEVELS, help="lowest level shown (default: all)"
    )
    p.add_argument(
        "-n",
        "--lines",
        type=_lines,
        default=10,
        metavar="N",
        help="first show the N most recent entries, as tail(1) (default 10; 0: live only)",
    )
    p.add_argument("--since-id", metavar="CURSOR", help="resume after this event id (wins over -n)")
    p.add_argument("--json", action="store_true", help="one JSON object per entry, with its id")
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="level colours (auto: when stdout is a terminal and NO_COLOR is unset)",
    )
    _add_connection(p, "url")


def _lines(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 0, not {text!r}")
    return int(text)


def _add_connection(p: argparse.ArgumentParser, over: str) -> None:
    """--token, and the address of the gateway the verb talks to: `url` (HTTP) or
    `target` (gRPC)."""
    group = p.add_argument_group("connection")
    group.add_argument(
        "--token",
        help="JWT (default $LOGS_GATEWAY_TOKEN; else one is minted with the local signing key)",
    )
    if over == "url":
        group.add_argument(
            "--url", help=f"gateway HTTP URL (default $LOGS_GATEWAY_URL or {DEFAULT_URL})"
        )
    else:
        group.add_argument(
            "--target",
            metavar="HOST:PORT",
            help=f"gateway gRPC address (default $LOGS_GATEWAY_GRPC_TARGET or {DEFAULT_TARGET})",
        )


def run_client_verb(args: argparse.Namespace) -> int:
    """Run a client verb; a refusal from the gateway is one line on stderr and exit 1."""
    try:
        return _RUNNERS[args.verb](args)
    except LogsGatewayError as e:
        print(f"logs-gateway {args.verb}: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`logs-gateway tail ... | head`): stop quietly, as Unix
        # tools do, and keep Python from failing again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _simulate(args: argparse.Namespace) -> int:
    channel = args.channel or CHANNELS[args.service]
    token = token_source(args, f"simulator-{args.service}", publish=[channel])
    target = _target(args)
    print(f"simulating {args.service} on {channel} via {target}", file=sys.stderr, flush=True)

    async def simulate() -> int:
        async with Publisher(token, target, options=Options(close_timeout=CLOSE_TIMEOUT)) as pub:
            return await run_simulation(
                pub,
                args.service,
                channel=channel,
                interval=args.interval,
                count=args.count,
                seed=args.seed,
            )

    count = asyncio.run(simulate())
    print(f"published {_entries(count)} to {channel}", file=sys.stderr)
    return 0


def _publish(args: argparse.Namespace) -> int:
    token = token_source(args, "cli-publish", publish=[args.channel])
    fields: EntryFields = {"level": args.level, "attributes": dict(args.attr)}
    if args.source:
        fields["source"] = args.source
    options = Options(close_timeout=CLOSE_TIMEOUT, connect_timeout=CONNECT_TIMEOUT)
    with SyncPublisher(token, _target(args), options=options) as pub:
        if args.message in (None, "-"):
            count = publish_lines(pub, args.channel, sys.stdin, **fields)
        else:
            pub.publish(args.channel, args.message, **fields)
            count = 1
    print(f"published {_entries(count)} to {args.channel}", file=sys.stderr)
    return 0


def _tail(args: argparse.Namespace) -> int:
    token = token_source(args, "cli-tail", subscribe=args.channels)
    color = args.color == "always" or (
        args.color == "auto" and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    )
    printer = Printer(json_output=args.json, color=color)
    channels: list[str] = args.channels
    coro = tail(
        _url(args),
        channels,
        token,
        printer,
        level=args.level,
        since_id=args.since_id,
        lines=args.lines,
    )
    asyncio.run(coro)
    return 0


_RUNNERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "simulate": _simulate,
    "publish": _publish,
    "tail": _tail,
}


def token_source(
    args: argparse.Namespace,
    subject: str,
    *,
    publish: list[str] | tuple[str, ...] = (),
    subscribe: list[str] | tuple[str, ...] = (),
) -> TokenSource:
    """--token or LOGS_GATEWAY_TOKEN; else a minter of short-lived tokens with just these
    rights (minting one now, so a bad key or channel fails before anything connects)."""
    token = (args.token or os.environ.get("LOGS_GATEWAY_TOKEN", "")).strip()
    if token:
        return token
    config = cfg.load()
    if not (config.jwt_secret or config.jwt_private_key):
        raise ConfigError(NO_CREDENTIALS)
    mint = functools.partial(
        credentials.signer(config).mint,
        subject,
        publish=list(publish),
        subscribe=list(subscribe),
        ttl=MINTED_TTL,
    )
    mint()
    return mint


def _url(args: argparse.Namespace) -> str:
    url: str = args.url or os.environ.get("LOGS_GATEWAY_URL") or DEFAULT_URL
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"--url / LOGS_GATEWAY_URL {url!r}: must be an http:// or https:// URL")
    return url


def _target(args: argparse.Namespace) -> str:
    target: str = args.target or os.environ.get("LOGS_GATEWAY_GRPC_TARGET") or DEFAULT_TARGET
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or "/" in target:
        raise ConfigError(
            f"--target / LOGS_GATEWAY_GRPC_TARGET {target!r}: must be HOST:PORT, "
            "e.g. 127.0.0.1:50051"
        )
    return target


def _entry_level(text: str) -> str:
    """An entry level; `warning` too, as `serve --log-level` and Python's logging spell it."""
    return {"warning": "warn"}.get(text.lower(), text.lower())


def _entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def _non_negative(cast: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = cast(text)
        except ValueError:
            kind = "a whole number" if cast is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
        return value

    return parse


def _attribute(text: str) -> tuple[str, object]:
    """KEY=VALUE with the value typed: 120 -> int, 1.5 -> float, true/false -> bool."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    if value in ("true", "false"):
        return key, value == "true"
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, value
