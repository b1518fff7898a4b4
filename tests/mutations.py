"""One-line mutations of the resume, dedup, token and encoding paths, each run against the
tests that must catch it (docs/TESTING.md says what the last run found).

    scripts/mutate               # every mutation (slow: tens of minutes; not part of CI)
    scripts/mutate resume dedup  # those whose name holds any of these words
    scripts/mutate --list

A mutation is killed when its tests fail. One that survives is reported, and the run
fails, unless it carries a `survives` note saying why no test can or need catch it.
Each runs in a copy of the working tree, placed first on PYTHONPATH (for the tests and
for the gateway processes they start): the checkout itself is never changed. A mutation
whose text is no longer found (the code moved) is reported as such, and fails the run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    before: str  # found exactly once in `path`
    after: str
    tests: tuple[str, ...]  # pytest arguments: the tests that must catch it
    survives: str = ""  # for one that no test catches: why that is acceptable


SUB, HUB = "gateway/core/subscription.py", "gateway/core/hub.py"
RACES = "tests/test_resume_races.py"
MUTATIONS = (
    # -- resume ---------------------------------------------------------------------------
    Mutation(
        "resume: SSE sends again the held event the replay ended on",
        SUB,
        "(e for e in self.held if e.seq > last)",
        "(e for e in self.held if e.seq >= last)",
        ("tests/test_hub.py", RACES),
    ),
    Mutation(
        "resume: gRPC sends again the held event the replay ended on",
        SUB,
        "[e for e in self.held if e.seq > last and",
        "[e for e in self.held if e.seq >= last and",
        ("tests/test_stream_integration.py", "tests/test_grpc_servicers.py", RACES),
    ),
    Mutation(
        "resume: held events filtered by the cursor, not the last page's end",
        "gateway/core/catch_up.py",
        "self.last = max(self.last, page.next)",
        "self.last = self.last",
        ("tests/test_hub.py", RACES),
    ),
    Mutation(
        "resume: queued events not handed over before the switch to live",
        HUB,
        "self.flush()\n        self.counts.add_gaps(caught_up.gaps)",
        "self.counts.add_gaps(caught_up.gaps)",
        ("tests/test_hub.py", RACES, "-k", "memory or hub"),
        survives="equivalent since paged reads: Hub._send drops live events at or below "
        "sub.after, set by start, so this flush only spares that filter its work",
    ),
    Mutation(
        "resume: a cursor of another epoch resumes by its seq",
        "gateway/core/catch_up.py",
        "return CatchUp(pages, cursor.seq if same else 0, turns)",
        "return CatchUp(pages, cursor.seq, turns)",
        ("tests/test_resume.py", "tests/test_hub.py"),
    ),
    Mutation(
        "resume: heartbeats stop moving the cursor",
        HUB,
        "frame = sse.ping(epoch.encode(), seq) if seq and epoch == self._epoch() else sse.PING",
        "frame = sse.PING",
        ("tests/test_resume.py",),
    ),
    Mutation(
        "resume: a live start is not given the head as its cursor",
        "gateway/api/http/stream.py",
        "ready_id = encode_cursor(epoch, start.last) if fresh else None",
        "ready_id = None",
        ("tests/test_resume.py", RACES, "-k", "memory or not races"),
    ),
    Mutation(
        "resume: a gap's id does not resume after the loss",
        "gateway/core/sse.py",
        'event_id = f"{epoch.decode()}-{gap.seq}" if gap.reason != "reset" else None',
        "event_id = None",
        ("tests/test_resume.py", "tests/test_sse.py"),
    ),
    # -- dedup ----------------------------------------------------------------------------
    Mutation(
        "dedup: the memory broker stores a resent batch again",
        "gateway/core/broker_memory.py",
        "if key is not None and (seen := self._seen(key, now)) is not None:",
        "if False and (seen := self._seen(key, now)) is not None:",
        (
            "tests/test_broker_contract.py",
            "tests/test_sdk_publisher.py",
            "-k",
            "memory or exactly_once or stops_answering",
        ),
    ),
    Mutation(
        "dedup: the memory broker's window never ends",
        "gateway/core/broker_memory.py",
        "if stored is None or stored[0] < now - self._dedup_seconds:",
        "if stored is None:",
        ("tests/test_broker_contract.py", "tests/test_memory.py"),
    ),
    Mutation(
        "dedup: the Redis broker stores a resent batch again",
        "gateway/core/broker_redis_lua.py",
        "if ARGV[8] == '1' then\n  local seen",
        "if ARGV[8] == '0' then\n  local seen",
        (
            "tests/test_broker_contract.py",
            "tests/test_redis_gateways.py",
            "-k",
            "redis or batch",
        ),
    ),
    Mutation(
        "dedup: the Redis broker's window never ends",
        "gateway/core/broker_redis_lua.py",
        "if tonumber(at) >= now - tonumber(ARGV[9]) then",
        "if true then",
        ("tests/test_broker_contract.py", "tests/test_redis_broker.py"),
    ),
    Mutation(
        "dedup: ingest drops the batch's (producer, sequence)",
        "gateway/core/ingest.py",
        "appended = await self._broker.append(accepted, key)",
        "appended = await self._broker.append(accepted, None)",
        ("tests/test_sdk_publisher.py", "tests/test_grpc_servicers.py"),
    ),
    # -- tokens ---------------------------------------------------------------------------
    Mutation(
        "token: exp and iat no longer required",
        "gateway/core/tokens.py",
        'REQUIRED_CLAIMS = ("sub", "exp", "iat", "iss", "aud")',
        'REQUIRED_CLAIMS = ("sub", "iss", "aud")',
        ("tests/test_tokens.py", "tests/test_security.py"),
    ),
    Mutation(
        "token: an expired token is accepted",
        "gateway/core/tokens.py",
        "if time.time() >= principal.expires_at:",
        "if False:",
        ("tests/test_tokens.py", "tests/test_security.py"),
    ),
    Mutation(
        "token: the audience is not checked",
        "gateway/core/tokens.py",
        'options={"require": list(REQUIRED_CLAIMS), "verify_exp": False},',
        'options={"require": list(REQUIRED_CLAIMS), "verify_exp": False, "verify_aud": False},',
        ("tests/test_tokens.py", "tests/test_security.py"),
    ),
    Mutation(
        "token: the signature is not checked",
        "gateway/core/tokens.py",
        'options={"require": list(REQUIRED_CLAIMS), "verify_exp": False},',
        'options={"require": list(REQUIRED_CLAIMS), "verify_exp": False, '
        '"verify_signature": False},',
        ("tests/test_tokens.py", "tests/test_security.py"),
    ),
    Mutation(
        "token: subscribe rights are not checked",
        "gateway/core/tokens.py",
        "if not (self.admin or allowed(self.subscribe, channel)):",
        "if False:",
        ("tests/test_tokens.py", "tests/test_security.py"),
    ),
    Mutation(
        "token: publish rights are not checked",
        "gateway/core/tokens.py",
        "if not (self.admin or allowed(self.publish, channel)):",
        "if False:",
        ("tests/test_tokens.py", "tests/test_security.py"),
    ),
    Mutation(
        "token: a stream outlives its token by an hour",
        HUB,
        "delay = max(0.0, expires_at - time.time())",
        "delay = max(0.0, expires_at - time.time()) + 3600",
        ("tests/test_bad_input.py", "-k", "expires"),
    ),
    Mutation(
        "token: '>' covers a pattern that ends where it starts",
        "gateway/core/channels.py",
        "return len(target) > i",
        "return len(target) >= i",
        ("tests/test_channels.py", "tests/test_properties.py"),
    ),
    # -- encoding -------------------------------------------------------------------------
    Mutation(
        "encoding: line breaks kept in an event's name and id",
        "gateway/core/sse.py",
        "return value.translate(_BREAKS)",
        "return value",
        ("tests/test_sse.py", "tests/test_properties.py"),
    ),
    Mutation(
        "encoding: U+2028 and U+2029 left raw in the JSON line",
        "gateway/core/events.py",
        "data = data.replace(raw, escaped)",
        "pass",
        ("tests/test_sse.py", "tests/test_properties.py"),
    ),
    Mutation(
        "encoding: the severity floor drops its own level",
        "gateway/core/sse.py",
        'return b"".join(log_frame(epoch, e) for e in events if e.severity >= min_severity)',
        'return b"".join(log_frame(epoch, e) for e in events if e.severity > min_severity)',
        ("tests/test_sse.py", "tests/test_properties.py", "tests/test_stream_integration.py"),
    ),
    Mutation(
        "encoding: an entry of exactly the size limit is refused",
        "gateway/core/ingest.py",
        "if size > max_bytes:",
        "if size >= max_bytes:",
        ("tests/test_properties_rules.py", "tests/test_bad_input.py", "tests/test_limits.py"),
    ),
    Mutation(
        "encoding: parse_channel refuses every channel",
        "gateway/core/channels.py",
        'parts = _segments(text, "channel")',
        'parts = _segments("", "channel")',
        ("tests/test_properties_rules.py", RACES, "-k", "memory or rules"),
    ),
    Mutation(
        "encoding: a cursor past 2^53 is taken",
        "gateway/core/cursor.py",
        "if match is None or int(match.group(2)) > MAX_SEQ:",
        "if match is None:",
        ("tests/test_properties.py", "tests/test_resume.py"),
    ),
)


def copy_tree(into: Path) -> None:
    """The working tree as it is (tracked and new files, not ignored ones) under `into`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source, target = ROOT / name.decode(), into / name.decode()
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run(mutation: Mutation, tree: Path) -> str:
    """'killed', 'SURVIVED' or 'NOT FOUND' (its text is not once in its file)."""
    path = tree / mutation.path
    original = path.read_text()
    if original.count(mutation.before) != 1:
        return "NOT FOUND"
    path.write_text(original.replace(mutation.before, mutation.after))
    env = os.environ | {"PYTHONPATH": f"{tree}{os.pathsep}{tree / 'clients' / 'python'}"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    try:
        done = subprocess.run(
            [*command, *mutation.tests], cwd=tree, env=env, capture_output=True, check=False
        )
    finally:
        path.write_text(original)
    return "SURVIVED" if done.returncode == 0 else "killed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/mutate", description=__doc__.split("\n")[0])
    parser.add_argument("words", nargs="*", help="run the mutations whose name holds any")
    parser.add_argument("--list", action="store_true", help="list the mutations and stop")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.words or any(w in m.name for w in args.words)]
    if args.list:
        print("\n".join(m.name for m in chosen))
        return 0
    failed = 0
    with tempfile.TemporaryDirectory(prefix="mutate-") as folder:
        copy_tree(Path(folder))
        for mutation in chosen:
            started = time.monotonic()
            verdict = run(mutation, Path(folder))
            why = f"  ({mutation.survives})" if verdict == "SURVIVED" and mutation.survives else ""
            failed += verdict != "killed" and not why
            print(f"{verdict:9} {time.monotonic() - started:5.0f}s  {mutation.name}{why}")
    print(f"{len(chosen)} mutations, {failed} not killed and not explained")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
