"""The benchmark suite end to end, small (`python -m bench --quick`): every scenario runs
and produces a row, and no delivery is lost or doubled. No timing is asserted: figures on a
shared machine say nothing in a test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import churn_report, servers

ROOT = Path(__file__).resolve().parent.parent
POST_SCENARIOS = {"fan-out post", "latency post", "channels post", "ingest post"}  # an entry a POST
BATCH_BODIES = {"ingest b100 post", "ingest b100 grpc"}  # {"entries": [...]} against gRPC
GATEWAY_SCENARIOS = {
    "idle",
    "fan-out",
    "latency",
    "channels",
    "fan-out b10",
    "channels b10",
    *(f"ingest b{b} x{n}" for b in (1, 10, 100) for n in (1, 8)),
    *POST_SCENARIOS,
    *BATCH_BODIES,
}
NCHAN_SCENARIOS = {"idle", "fan-out", "latency", "channels", *POST_SCENARIOS}
REDIS_SCENARIOS = {"fan-out", "latency", "channels", "ingest b1 x1", "ingest b100 x1"}
CROSS_SCENARIOS = {"cross-instance latency", "cross fan-out"}
# The NATS broker (a private cluster of the upstream nats-server, as the tests start):
# ingest on one node and on three (R3), R3 fan-out and latency, across two gateways, and
# interest (a gateway's CPU for traffic none of its viewers watch) against Redis.
NATS_SCENARIOS = {
    ("gateway+nats", "ingest b100 x1"),
    *(("gateway+nats-r3", s) for s in ("ingest b100 x1", "ingest b100 x8", "fan-out", "latency")),
    ("2 gateways+nats-r3", "cross-instance latency"),
    ("2 gateways+nats", "cross-instance latency"),
    ("2 gateways+nats-r3", "interest"),
}
# What the bench compares the gateway with; missing, the bench would drop their rows, and
# the test fails instead, naming them.
COMPARED = (
    ("nchan (nginx, libnginx-mod-nchan)", servers.nchan_available),
    ("redis-server", lambda: shutil.which("redis-server") is not None),
)


@pytest.mark.timeout(600)
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the suite pins two cores")
def test_quick_run_has_every_scenario_and_loses_nothing(tmp_path: Path) -> None:
    missing = [name for name, there in COMPARED if not there()]
    assert not missing, f"not installed (scripts/test installs them): {', '.join(missing)}"
    command = [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    (results,) = tmp_path.glob("results-*.json")
    rows = json.loads(results.read_text())["medians"]
    found = {(r["server"], r["scenario"]) for r in rows}
    wanted = {("gateway", s) for s in GATEWAY_SCENARIOS} | {("aiohttp", "ingest post")}
    wanted |= NATS_SCENARIOS
    wanted |= {("nchan", s) for s in NCHAN_SCENARIOS}
    wanted |= {("gateway+redis", s) for s in REDIS_SCENARIOS}
    wanted |= {("2 gateways+redis", s) for s in (*CROSS_SCENARIOS, "interest")}
    assert wanted <= found, f"missing rows: {sorted(wanted - found)}"
    for row in rows:
        assert (row["lost"], row["dups"]) == (0, 0), row
        assert row["rate"] > 0 or row["connections"] > 0, row
    table = (tmp_path / "table.md").read_text()
    assert all(scenario in table for _, scenario in wanted)


@pytest.mark.timeout(300)
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the suite pins two cores")
def test_quick_churn_has_every_figure_and_forgets_expired_channels(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench", "churn", "--quick", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    (churn,) = json.loads((tmp_path / "churn.json").read_text())
    sizes = churn["sizes"]
    for number, round_ in enumerate(churn["rounds"], 1):
        assert round_["published"] == sizes["round_channels"], (number, round_)
        assert round_["channels_after"] <= sizes["round_channels"] // 100, (number, round_)
    assert max(kb for _, kb, _ in churn["curve"]) > 0
    assert max(n for _, _, n in churn["curve"]) > 0  # the gauge saw the round's channels
    first, again = churn["across"]["first"], churn["across"]["again"]
    assert (first["gaps"], first["closed"], first["refused"]) == (1, False, False), first
    assert again["gaps"] == 0, again
    assert len(churn["resume_ms"]) == 4 and all(ms > 0 for ms in churn["resume_ms"].values())
    storms = ("idle", "one channel each", "wildcard")
    wanted = {f"{s} at {n}" for s in storms for n in (sizes["few"], sizes["round_channels"])}
    assert set(churn["lag_ms"]) == wanted
    assert not any(churn["storm_late"].values()), churn["storm_late"]
    assert not any(churn["storm_refused"].values()), churn["storm_refused"]
    assert churn["watched"] == sizes["round_channels"]  # one entry to each channel present
    for run in ("none", "patterns"):
        ingest = churn["ingest"][run]
        assert ingest["rate"] > 0 and ingest["refused"] == ingest["viewers_lost"] == 0, ingest
        bystander = ingest["bystander"]
        assert bystander["received"] == bystander["sent"] > 0, bystander
    assert (
        churn["ingest"]["patterns"]["streams"] * sizes["patterns_per_stream"] == sizes["patterns"]
    )
    table = (tmp_path / "churn.md").read_text()
    assert all(what in table for what, _, _ in churn_report.CHURN_ROWS)


def test_verify_bench_runs_every_case() -> None:
    """`python -m bench verify --quick`: each case prints its ratio (not judged here)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench", "verify", "--quick"],
        capture_output=True, text=True, check=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    cases = [line.split(":")[0] for line in out.stdout.splitlines()]
    assert cases == ["signature checked", "token cached", "signature checked, two issuers"]
