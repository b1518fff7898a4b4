"""`tail`: follow channels live in a terminal over the gateway's SSE stream, like
`kubectl logs -f`.

It reconnects on its own with `Last-Event-ID`, so while the missed entries are still in the
gateway's history nothing is lost or shown twice; a fresh token is fetched for each
connection, so an expired token is replaced rather than fatal. Entries go to stdout, notices
(connected, gaps, reconnects) to stderr, so `tail --json | jq` sees only entries.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp

from logs_gateway.backoff import Backoff
from logs_gateway.errors import Unavailable, error_for
from logs_gateway.sse import Parser, ServerEvent
from logs_gateway.tokens import TokenSource, fetch_token

DEFAULT_URL = "http://127.0.0.1:3002"
STREAM_PATH = "/api/logs/stream"
# Nothing at all (not even the 15 s `: ping`) for this long: the connection is dead.
READ_TIMEOUT = 60.0
# Failed attempts in a row (no event received) before tail gives up.
MAX_FAILURES = 30
# How long tail tries to open its first stream before it says the gateway cannot be reached.
CONNECT_TIMEOUT = 3.0
MAX_BACKOFF = 5.0
# HTTP answers worth retrying: too many streams for now, gateway down or draining.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# HTTP status -> gRPC status number, to raise the same typed errors as the publisher.
_STATUS_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 413: 8}

COLORS = {
    "trace": "\x1b[2m",
    "debug": "\x1b[2m",
    "info": "\x1b[32m",
    "warn": "\x1b[33m",
    "error": "\x1b[31m",
    "fatal": "\x1b[1;31m",
}
RESET = "\x1b[0m"


def format_entry(data: dict[str, Any], color: bool) -> str:
    """One entry as a terminal line: time, level, channel, [source], message, attributes;
    multi-line attribute values (stack traces) follow on indented lines."""
    level = str(data.get("level", "info"))
    tag = f"{level.upper():5}"
    if color:
        tag = f"{COLORS.get(level, '')}{tag}{RESET}"
    time = str(data.get("time", ""))[11:23]
    line = (
        f"{time} {tag} {data.get('channel', '')} [{data.get('source', '')}] {data.get('message')}"
    )
    extra: list[str] = []
    for name, value in (data.get("attributes") or {}).items():
        if isinstance(value, str) and "\n" in value:
            extra.append(f"    {name}:\n" + "\n".join(f"      {v}" for v in value.splitlines()))
        else:
            line += f" {name}={_shown(value)}"
    return "\n".join([line, *extra])


def _shown(value: object) -> str:
    """A plain word as is; anything else (spaces, quotes, numbers) as JSON."""
    if isinstance(value, str) and value and not any(c in value for c in ' "='):
        return value
    return json.dumps(value, ensure_ascii=False)


@dataclass
class Printer:
    """Where entries and notices go, and how entries look."""

    json_output: bool = False
    color: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    def entry(self, event_id: str, data: dict[str, Any]) -> None:
        if self.json_output:
            text = json.dumps({"id": event_id, **data}, ensure_ascii=False, separators=(",", ":"))
        else:
            text = format_entry(data, self.color)
        print(text, file=self.out, flush=True)

    def notice(self, text: str) -> None:
        print(f"-- {text}", file=self.err, flush=True)


@dataclass
class _Position:
    """Where the next connection resumes, and whether this attempt received anything."""

    cursor: str = ""
    explicit: bool = False  # a --since-id not yet used: sent as `last_event_id`, checked
    progressed: bool = False
    connected_before: bool = False
    lines: int = 0  # recent entries asked for while there is no cursor yet


async def tail(
    url: str,
    channels: list[str],
    token: TokenSource,
    printer: Printer,
    *,
    level: str | None = None,
    since_id: str | None = None,
    lines: int = 0,
    max_failures: int = MAX_FAILURES,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> None:
    """Print the `lines` most recent entries, then entries as they come, until cancelled.
    Raises a LogsGatewayError when the gateway refuses the stream (token, rights, bad
    channel, cursor or count), when no stream could be opened within `connect_timeout` of
    the start (a wrong --url says so at once, as publish does), or after `max_failures`
    failed attempts in a row once it has followed (a gateway restart is waited out)."""
    position = _Position(cursor=since_id or "", explicit=bool(since_id), lines=lines)
    backoff = Backoff(MAX_BACKOFF)
    failures = 0
    give_up_at = asyncio.get_running_loop().time() + connect_timeout
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=READ_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout, read_bufsize=2**20) as session:
        while True:
            try:
                ending = await _follow(session, url, channels, level, token, position, printer)
            except (aiohttp.ClientError, TimeoutError) as e:
                if not position.connected_before:
                    ending = f"cannot reach {url}: {_cause(e)}"
                    if asyncio.get_running_loop().time() >= give_up_at:
                        raise Unavailable(ending) from None
                else:
                    ending = f"connection lost: {_cause(e)}"
            failures = 0 if position.progressed else failures + 1
            if position.progressed:
                backoff.reset()
            position.progressed = False
            if failures >= max_failures:
                raise Unavailable(f"no stream from {url} after {failures} attempts: {ending}")
            printer.notice(f"{ending}; reconnecting")
            await asyncio.sleep(backoff.next())


async def _follow(
    session: aiohttp.ClientSession,
    url: str,
    channels: list[str],
    level: str | None,
    token: TokenSource,
    position: _Position,
    printer: Printer,
) -> str:
    """One connection: print its events until it ends; return why it ended."""
    params = {"channels": ",".join(channels)} | ({"level": level} if level else {})
    if position.lines and not position.cursor:  # a reconnect resumes from its cursor
        params["tail"] = str(position.lines)
    headers = {"Authorization": f"Bearer {await fetch_token(token)}"}
    if position.explicit:
        params["last_event_id"] = position.cursor
    elif position.cursor:
        headers["Last-Event-ID"] = position.cursor
    async with session.get(url.rstrip("/") + STREAM_PATH, params=params, headers=headers) as r:
        if r.status in RETRY_STATUSES:
            return f"HTTP {r.status}: {await _error_message(r)}"
        if r.status != 200:
            message = await _error_message(r)
            if r.status == 400 and position.lines and "'tail'" in message:
                message = f"-n {position.lines} is more than the gateway sends ({message})"
            raise error_for(_STATUS_CODES.get(r.status, 0), message)
        position.explicit = False
        parser = Parser()
        async for raw in r.content:
            event = parser.feed(raw.decode("utf-8", "replace").rstrip("\r\n"))
            if event is not None and (ending := _handle(event, position, printer)):
                return ending
    return "stream ended"


def _handle(event: ServerEvent, position: _Position, printer: Printer) -> str | None:
    """Act on one event; a reason when it ends the connection."""
    if event.id:
        position.cursor = event.id
    data = json.loads(event.data)
    if event.event == "log":
        position.progressed = True
        printer.entry(event.id, data)
    elif event.event == "ready":
        position.progressed = True
        verb = "reconnected to" if position.connected_before else "following"
        printer.notice(f"{verb} {', '.join(data.get('channels', []))} (Ctrl-C to stop)")
        position.connected_before = True
    elif event.event == "gap":
        lost, reason = data.get("lost") or "some", data.get("reason", "")
        printer.notice(f"gap: {lost} entries lost on {data.get('channel')} ({reason})")
    elif event.event == "error":
        return f"stream closed by the gateway: {data.get('message') or data}"
    elif event.event == "shutdown":  # the gateway asks for a reconnect: say why
        if data.get("reason") == "resync":
            return "the gateway's live feed was interrupted"
        return "the gateway is shutting down"
    return None


def _cause(error: Exception) -> str:
    """Why a connection failed, as a person reads it: "connection refused", "timed out"."""
    os_error = getattr(error, "os_error", None)
    if isinstance(os_error, OSError) and os_error.errno:
        return os.strerror(os_error.errno).lower()
    if isinstance(error, TimeoutError):
        return "timed out"
    return str(error) or "connection failed"


async def _error_message(response: aiohttp.ClientResponse) -> str:
    """The gateway's `{"error": {"message"}}`, else the start of the body."""
    text = await response.text()
    try:
        return str(json.loads(text)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return text[:200] or response.reason or str(response.status)
