"""The JS client's pure parts, run in Node: they must agree with the gateway's own rules."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.core.channels import parse_pattern
from gateway.core.errors import GatewayError

CLIENT = Path(__file__).resolve().parent.parent / "clients" / "web" / "logs-client.js"
PATTERNS = [
    "logs:etl:ws1:wf1",
    "logs:*:ws1",
    "logs:*:ws1:>",
    "logs:>",
    "logs:etl:>",
    "logs:*:*:*",
    "logs",
    "logs:>:x",
    "logs:et l:ws1",
    "logs::ws1",
    "logs:a:b:c:d:e:f",
    "logs:" + "x" * 65,
    "logs:ünïcode:ws1",
]
CHANNELS = ["logs:etl:ws1:wf1", "logs:etl:ws1", "logs:analytics:ws1", "logs:faas:ws2:fn1"]


def run_node(script: str, cases: Any) -> Any:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is missing (Node 20 is part of this project's machine)")
    program = f"import * as c from {json.dumps(CLIENT.as_uri())};\n{script}"
    done = subprocess.run(
        [node, "--input-type=module", "-e", program],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(done.stdout)


READ_CASES_ESM = (
    "import { readFileSync } from 'node:fs';\nconst cases = JSON.parse(readFileSync(0, 'utf8'));"
)


def python_match(pattern: str, channel: str) -> bool | None:
    try:
        return parse_pattern(pattern).matches(channel)
    except GatewayError:
        return None


@pytest.fixture(scope="module")
def js_results() -> dict[str, Any]:
    script = (
        READ_CASES_ESM
        + """
const out = {};
for (const p of cases.patterns) {
  let segments = null;
  try { segments = c.parsePattern(p); } catch { out[p] = null; continue; }
  out[p] = Object.fromEntries(cases.channels.map((ch) => [ch, c.segmentsMatch(segments, ch)]));
}
console.log(JSON.stringify(out));
"""
    )
    result: dict[str, Any] = run_node(script, {"patterns": PATTERNS, "channels": CHANNELS})
    return result


@pytest.mark.parametrize("pattern", PATTERNS)
def test_patterns_match_as_in_the_gateway(js_results: dict[str, Any], pattern: str) -> None:
    expected = {ch: python_match(pattern, ch) for ch in CHANNELS}
    if None in expected.values():
        assert js_results[pattern] is None, f"the client accepts {pattern!r}"
    else:
        assert js_results[pattern] == expected


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    script = (
        READ_CASES_ESM
        + """
const out = cases.map(([attempt, r]) => c.backoffDelay(attempt, 1000, 30000, () => r));
console.log(JSON.stringify(out));
"""
    )
    cases = [[0, 0], [0, 1], [1, 0], [1, 1], [4, 0.5], [5, 1], [12, 0], [12, 1]]
    assert run_node(script, cases) == [500, 1000, 1000, 2000, 12000, 30000, 15000, 30000]


def test_entry_identity_survives_an_epoch_change() -> None:
    """After a restart offsets start again; the key must still tell entries apart."""
    script = READ_CASES_ESM + "console.log(JSON.stringify(cases.map((e) => c.entryKey(e))));"
    old = {"channel": "logs:etl:a:b", "offset": 0, "time": "2026-11-27T01:00:00.000001Z"}
    new = old | {"time": "2026-11-27T01:05:00.000001Z"}
    keys = run_node(script, [old, new, dict(old)])
    assert keys[0] != keys[1]
    assert keys[0] == keys[2]
