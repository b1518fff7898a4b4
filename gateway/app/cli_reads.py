"""The read verbs of `logs-gateway`: `channels` (what a token may open, like `kubectl get`)
and `history` (a range of retained entries, then exit). Flags and printing here; the HTTP
reads in the SDK (`logs_gateway.reads`)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from logs_gateway.reads import list_channels, print_forward, read_back
from logs_gateway.tail import Printer

from gateway.app.cli_clients import (
    LEVELS,
    PATTERNS_HELP,
    add_connection,
    entry_level,
    http_url,
    run_client_verb,
    since_argument,
    token_source,
)

VERBS = ("channels", "history")


def add_parsers(verbs: Any) -> None:
    p = verbs.add_parser(
        "channels",
        help="list the channels holding entries that you may open, newest activity first",
        description="List the channels holding retained entries that the token may "
        "subscribe to, newest activity first, with their entry count, last activity and "
        "newest cursor (for `history --before`).",
    )
    p.add_argument("pattern", nargs="?", default=">", help=f"{PATTERNS_HELP} (default: all)")
    p.add_argument(
        "--limit", type=_count, default=100, metavar="N", help="list at most N (default 100)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per channel")
    add_connection(p, "url")
    _add_history(verbs)


def _add_history(verbs: Any) -> None:
    p = verbs.add_parser(
        "history",
        help="print a range of retained entries, then exit (for scripts and grep)",
        description="Print retained entries of channels, oldest first, then exit: the "
        "newest (default), those before or after an entry's id "
        "(`--json` prints it), or those from a time on.",
    )
    p.add_argument("channels", nargs="+", metavar="CHANNEL_OR_PATTERN", help=PATTERNS_HELP)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--before", metavar="CURSOR", help="the entries just before this id")
    where.add_argument("--after", metavar="CURSOR", help="every entry after this id")
    where.add_argument(
        "--since",
        type=since_argument,
        metavar="TIME",
        help="every entry from 10m ago or a time",
    )
    p.add_argument(
        "-n",
        "--limit",
        type=_count,
        metavar="N",
        help="at most N entries (default: all after --after or --since; else the newest 200)",
    )
    p.add_argument(
        "--level", type=entry_level, choices=LEVELS, help="lowest level shown (default: all)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per entry, with its id")
    add_connection(p, "url")


def run(args: argparse.Namespace) -> int:
    return run_client_verb(args, _RUNNERS)


def _channels(args: argparse.Namespace) -> int:
    token = token_source(args, "cli-channels", subscribe=[args.pattern])
    rows = asyncio.run(list_channels(http_url(args), args.pattern, token, args.limit))
    if args.json:
        for row in rows:
            print(json.dumps(row, separators=(",", ":")))
    else:
        print_table(rows, time.time())
    if not rows:
        print(f"no channel of {args.pattern!r} holds entries you may open", file=sys.stderr)
    return 0


def _history(args: argparse.Namespace) -> int:
    token = token_source(args, "cli-history", subscribe=args.channels)
    printer = Printer(json_output=args.json, color=False)
    params = {"channels": ",".join(args.channels)} | ({"level": args.level} if args.level else {})
    url = http_url(args)
    if args.after or args.since:
        params |= {"after": args.after} if args.after else {"since": args.since}
        asyncio.run(print_forward(url, params, token, printer, args.limit))
        return 0
    params |= {"before": args.before} if args.before else {}
    entries, last = asyncio.run(read_back(url, params, token, args.limit or 200))
    for data in entries:
        printer.entry(data.pop("id"), data)
    if last.get("start") and last.get("lost_before_start"):
        printer.notice(
            f"start of retained history: {last['lost_before_start']} earlier entries are gone"
        )
    return 0


def print_table(rows: list[dict[str, Any]], now: float) -> None:
    """Columns as `kubectl get` prints them: padded, upper-case headers, ages."""
    table = [("CHANNEL", "ENTRIES", "LAST ACTIVITY", "CURSOR")]
    for row in rows:
        age = now - _seconds(row["last_activity"])
        table.append((row["channel"], str(row["entries"]), f"{_age(age)} ago", row["cursor"]))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for r in table if rows else ():
        print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "   " + r[3])


def _seconds(text: str) -> float:
    return dt.datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00").timestamp()


def _age(seconds: float) -> str:
    """Like kubectl: 45s, 12m, 3h, 2d."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text[:9]) <= 100_000:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 100000, not {text!r}")
    return int(text)


_RUNNERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "channels": _channels,
    "history": _history,
}
