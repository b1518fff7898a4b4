"""`python -m bench [--quick]`: run the benchmark suite and print the results table;
`python -m bench churn [--quick] [--against TREE]`: the channel churn scenario (bench/churn.py);
`python -m bench history [--redis URL]`: history pages and discovery (bench/history.py);
`python -m bench page [--repeat N] [--against TREE]`: the Logs page at 100,000 entries
(bench/page.py);
`python -m bench verify [--quick]`: token verification, remote issuer vs file key (bench/verify.py).

Servers run pinned to core 0, the load generator to core 1, all on 127.0.0.1; every phase
is bounded in time. Results go to bench/results/ (JSON, the table as Markdown, the plot).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from bench import churn, history, page, profiles, report, servers, verify
from bench.scenarios import Row
from bench.suite import FULL, QUICK, Servers, Suite, plan_all

RESULTS = Path(__file__).with_name("results")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="every scenario, small and short")
    parser.add_argument("--repeat", type=int, default=1, help="runs; the table shows medians")
    parser.add_argument("--only", nargs="+", metavar="TEXT", help="steps whose label has TEXT")
    parser.add_argument("--no-nchan", action="store_true", help="skip nchan even if installed")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis scenarios")
    parser.add_argument("--no-nats", action="store_true", help="skip the NATS scenarios")
    parser.add_argument(
        "--nats-on-load-core",
        action="store_true",
        help="NATS nodes on the load generator's core: the gateway alone on the server core",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    parser.add_argument("--plot", type=Path, help="where the PNG goes (default OUT/scaling.png)")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy the gateways into DIR")
    parser.add_argument(
        "--gateway-args",
        default="",
        metavar="FLAGS",
        help="more `serve` flags, e.g. '--event-loop uvloop'",
    )
    return parser.parse_args(argv)


def machine() -> dict[str, object]:
    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "server_core": servers.SERVER_CORE,
        "load_cores": servers.LOAD_CORES,
    }


def raise_file_limit() -> int:
    """Idle runs hold 10,000 sockets in each of the server and the load generator."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def run_once(suite: Suite, only: list[str] | None) -> list[Row]:
    rows = []
    for label, step in plan_all(suite):
        if only and not any(text in label for text in only):
            continue
        started = time.monotonic()
        suite.servers.label = label
        try:
            got = step()
        except Exception as e:  # a failed step is a row saying so, and the run goes on
            traceback.print_exc()
            got = Row(label, "failed", lost=-1, note=f"failed: {type(e).__name__}: {e}")
        took = time.monotonic() - started
        got = got if isinstance(got, list) else [got]
        for line in report.table(got).splitlines()[2:]:
            print(f"  {label}: {line} ({took:.1f} s)", file=sys.stderr, flush=True)
        rows += got
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    os.sched_setaffinity(0, set(servers.LOAD_CORES))
    limit = raise_file_limit()
    if argv[:1] == ["churn"]:
        return churn.main(argv[1:])
    if argv[:1] == ["history"]:
        return history.main(argv[1:])
    if argv[:1] == ["page"]:
        return page.main(argv[1:])
    if argv[:1] == ["verify"]:
        return verify.main(argv[1:])
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if limit < sizes.idle_connections + 1000:
        print(f"bench: open files limited to {limit}; idle needs more", file=sys.stderr)
    kinds = ("gateway",) if args.no_nchan or not servers.nchan_available() else ("gateway", "nchan")
    if "nchan" not in kinds and not args.no_nchan:
        print("bench: nchan not installed (bench/run installs it); gateway only", file=sys.stderr)
    redis = not args.no_redis and shutil.which("redis-server") is not None
    runs = []
    if args.profile and not profiles.available():
        print("bench: --profile needs py-spy (pip install py-spy)", file=sys.stderr)
        return 2
    extra = tuple(args.gateway_args.split())
    nats_core = servers.LOAD_CORES[0] if args.nats_on_load_core else servers.SERVER_CORE
    with Servers(not args.quick, args.profile, extra, nats_core=nats_core) as started:
        suite = Suite(sizes, started, kinds, redis, not args.no_nats)
        for i in range(args.repeat):
            print(f"bench: run {i + 1} of {args.repeat}", file=sys.stderr, flush=True)
            runs.append(run_once(suite, args.only))
    rows = report.medians(runs)
    text = report.table(rows)
    print(text)
    save(args, rows, runs, text, sizes)
    return 0 if all(r.lost == 0 and r.dups == 0 for r in rows) else 1


def save(
    args: argparse.Namespace, rows: list[Row], runs: list[list[Row]], text: str, sizes: object
) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    document = {
        "machine": machine(),
        "sizes": asdict(sizes),  # type: ignore[call-overload]
        "medians": [asdict(r) for r in rows],
        "runs": [[asdict(r) for r in run] for run in runs],
    }
    (args.out / f"results-{stamp}.json").write_text(json.dumps(document, indent=1))
    (args.out / "table.md").write_text(text + "\n")
    plot = args.plot or args.out / "scaling.png"
    fanout = sizes.fanout_subscribers  # type: ignore[attr-defined]
    if report.plot(rows, plot, "fan-out", fanout):
        print(f"plot: {plot}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
