"""The results table (medians over repeated runs, ratios to nchan) and the scaling plot,
and the table and figure helpers the churn report (bench/churn_report.py) shares."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.scenarios import Row

SATURATED = 0.9  # a load generator above this share of its core may be the bottleneck
COLUMNS = (
    "scenario",
    "server",
    "result",
    "per server core-s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "lost",
    "dup",
    "load gen CPU",
    "server CPU",
    "vs nchan",
)
BARE = "aiohttp"  # bench/bare_http.py: what a POST costs aiohttp itself


def medians(runs: Sequence[Sequence[Row]]) -> list[Row]:
    """One row per (scenario, server): medians of the figures, totals of lost and dup."""
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for run in runs:
        for row in run:
            groups[row.scenario, row.server].append(row)
    return [_median(rows) for rows in groups.values()]


def _median(rows: list[Row]) -> Row:
    if len(rows) == 1:
        return rows[0]
    keys = set.intersection(*(set(r.latency_ms) for r in rows))
    middle = sorted(rows, key=lambda r: r.rate or r.kb_per_connection)[len(rows) // 2]
    return replace(
        middle,
        rate=statistics.median(r.rate for r in rows),
        latency_ms={k: statistics.median(r.latency_ms[k] for r in rows) for k in sorted(keys)},
        lost=sum(r.lost for r in rows),
        dups=sum(r.dups for r in rows),
        load_cpu=statistics.median(r.load_cpu for r in rows),
        server_cpu=statistics.median(r.server_cpu for r in rows),
        server_wait=statistics.median(r.server_wait for r in rows),
        publisher_cpu=statistics.median(r.publisher_cpu for r in rows),
        kb_per_connection=statistics.median(r.kb_per_connection for r in rows),
        note="; ".join(sorted({r.note for r in rows if r.note})),
    )


def _result(row: Row) -> str:
    if row.unit == "kB/connection":
        return f"{row.kb_per_connection:.1f} kB/conn at {row.connections:,}"
    return f"{row.rate:,.0f} {row.unit}"


def _per_core(row: Row) -> str:
    if row.unit == "kB/connection" or not row.server_cpu:
        return ""
    return f"{row.rate / row.server_cpu:,.0f}"


def _vs_nchan(row: Row, nchan: Row | None) -> str:
    if nchan is None or row.server == "nchan":
        return ""
    if row.unit == "kB/connection":
        return (
            f"{row.kb_per_connection / nchan.kb_per_connection:.2f}x memory"
            if nchan.kb_per_connection
            else ""
        )
    parts = [f"{row.rate / nchan.rate:.2f}x rate"] if nchan.rate else []
    if "p99" in row.latency_ms and nchan.latency_ms.get("p99"):
        parts.append(f"{row.latency_ms['p99'] / nchan.latency_ms['p99']:.2f}x p99")
    return ", ".join(parts)


def _cpu_vs(row: Row, other: Row | None, per: str, what: str) -> str:
    """Server CPU per entry against another row's, same run (`per`: what an entry is)."""
    if other is None or other is row or not (row.rate and other.rate and other.server_cpu):
        return ""
    ratio = (row.server_cpu / row.rate) / (other.server_cpu / other.rate)
    return f"{ratio:.2f}x CPU/{per} of {what} ({1e6 * row.server_cpu / row.rate:.0f} us)"


def _server_cpu(row: Row) -> str:
    """Its CPU share, and the share it waited for a CPU when the machine's other work took
    a noticeable part (then its rate says more about the machine than about it)."""
    if row.unit == "kB/connection":
        return ""
    waited = f" (+{row.server_wait:.0%} waiting)" if row.server_wait >= 0.05 else ""
    return f"{row.server_cpu:.0%}{waited}"


def _cells(row: Row, nchan: Row | None, versus: str) -> list[str]:
    lat = row.latency_ms
    load = f"{row.load_cpu:.0%}" + (" (saturated)" if row.load_cpu > SATURATED else "")
    if row.publisher_cpu:  # the C POST publisher's own share, saturated or not
        load += f", POSTs {row.publisher_cpu:.0%}"
    return [
        row.scenario,
        row.server,
        _result(row),
        _per_core(row),
        *(f"{lat[k]:.1f}" if k in lat else "" for k in ("p50", "p99", "max")),
        str(row.lost),
        str(row.dups),
        load if row.unit != "kB/connection" else "",
        _server_cpu(row),
        ", ".join(part for part in (_vs_nchan(row, nchan), versus) if part),
    ]


def table(rows: Sequence[Row]) -> str:
    """A Markdown table (readable as plain text too); notes follow it."""
    nchan = {r.scenario: r for r in rows if r.server == "nchan"}
    bare = {r.scenario: r for r in rows if r.server == BARE}
    # `ingest bN post` (batch bodies) against `ingest bN grpc`, measured in turns with it.
    grpc = {
        r.scenario.removesuffix("grpc") + "post": r for r in rows if r.scenario.endswith("grpc")
    }
    body = [
        _cells(
            r,
            nchan.get(r.scenario),
            _cpu_vs(r, bare.get(r.scenario), "POST", "bare aiohttp")
            or _cpu_vs(r, grpc.get(r.scenario), "entry", "gRPC"),
        )
        for r in rows
    ]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(COLUMNS)]
    lines = [table_line(COLUMNS, widths), table_line(["-" * w for w in widths], widths)]
    lines += [table_line(b, widths) for b in body]
    notes = [f"- {r.scenario} on {r.server}: {r.note}" for r in rows if r.note]
    return "\n".join([*lines, "", *notes] if notes else lines)


def table_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"


def pyplot() -> Any:
    """matplotlib's pyplot drawing to files, or None when the `bench` extra is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot(rows: Sequence[Row], path: Path, fanout_scenario: str, subscribers: int) -> bool:
    """Deliveries/s against subscribers, and server memory against open connections; False
    when matplotlib (the `bench` extra) is missing."""
    plt = pyplot()
    if plt is None:
        return False
    figure, (rate_axes, memory_axes) = plt.subplots(1, 2, figsize=(11, 4.2))
    for server in sorted({r.server for r in rows if r.server in ("gateway", "nchan")}):
        points = sorted(_scaling_points(rows, server, fanout_scenario, subscribers))
        if points:
            rate_axes.plot(*zip(*points, strict=True), marker="o", label=server)
        for row in rows:
            if row.server == server and row.memory_curve:
                xs, kbs = zip(*row.memory_curve, strict=True)
                memory_axes.plot(xs, [kb / 1024 for kb in kbs], marker=".", label=server)
    rate_axes.set(
        title="Fan-out, 1 channel", xlabel="SSE subscribers", ylabel="deliveries/s", xscale="log"
    )
    memory_axes.set(
        title="Idle SSE connections", xlabel="open connections", ylabel="server RSS (MiB)"
    )
    save_figure(plt, figure, (rate_axes, memory_axes), path)
    return True


def save_figure(plt: Any, figure: Any, panels: Sequence[Any], path: Path) -> None:
    for axes in panels:
        axes.grid(True, alpha=0.3)
        if axes.get_legend_handles_labels()[0]:  # a partial run may have no curve here
            axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _scaling_points(
    rows: Sequence[Row], server: str, fanout_scenario: str, subscribers: int
) -> list[tuple[int, float]]:
    points = []
    for row in rows:
        if row.server != server:
            continue
        if row.scenario == fanout_scenario:
            points.append((subscribers, row.rate))
        elif row.scenario.startswith("scaling "):
            points.append((int(row.scenario.split()[1]), row.rate))
    return points
