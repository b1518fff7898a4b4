"""`logs-gateway rights TOKEN`: what a token would be allowed and why, from the same
verifier and rules the server uses, for an operator debugging a 401 or a 403."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from gateway.app import config as cfg
from gateway.app import credentials
from gateway.app.config import AUTH_SETTINGS
from gateway.core.tokens import Explanation

HELP = "show what a token may do and why (which issuer, key and rules)"


def add_parser(verbs: Any) -> None:
    rights = verbs.add_parser("rights", help=HELP, description=HELP)
    rights.add_argument("token", help="the JWT, or - to read it from standard input")
    cfg.add_arguments(rights, AUTH_SETTINGS)


def run(args: argparse.Namespace) -> int:
    """Print the explanation; exit 0 if the token is accepted, 1 if refused."""
    trust = credentials.trust(cfg.load(args))
    asyncio.run(_fetch_keys(trust))
    token = _read_token(args.token)
    explanation = trust.verifier.explain(token)
    print("\n".join(describe(explanation)))
    return 0 if explanation.error is None else 1


def _read_token(arg: str) -> str:
    """The token itself, or standard input's for `-` (keeps it out of shell history)."""
    return (sys.stdin.read() if arg == "-" else arg).strip()


async def _fetch_keys(trust: credentials.Trust) -> None:
    await asyncio.gather(*(keys.fetch_once() for keys in trust.issuers.remote))


def describe(e: Explanation) -> list[str]:
    if e.error is not None or e.issuer is None or e.principal is None:
        assert e.error is not None
        return [f"refused: {e.error.message} ({e.error.reason})"]
    p = e.principal
    lines = [
        f"issuer: {e.issuer.name} (keys: {e.issuer.keys.status().detail})",
        f"subject: {p.subject}",
        f"accepted until: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(p.expires_at))}",
    ]
    for f in e.findings:
        seen = f" value {f.value!r}" if f.value else ""
        if f.refused:
            lines.append(f"rule {f.rule}:{seen} gives nothing: {f.refused}")
            continue
        grants = [*(f"publish {x.text}" for x in f.publish)]
        grants += [f"subscribe {x.text}" for x in f.subscribe] + ["admin"] * f.admin
        lines.append(f"rule {f.rule}:{seen} grants {', '.join(grants) or 'nothing'}")
    if not e.findings:
        lines.append("no rule matched any of its claims: it may do nothing")
    lines += [
        f"publish: {' '.join(x.text for x in p.publish) or '-'}",
        f"subscribe: {' '.join(x.text for x in p.subscribe) or '-'}",
        f"admin: {'yes (everything)' if p.admin else 'no'}",
    ]
    return lines
