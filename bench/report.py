"""The results table (medians over repeated runs, ratios to nchan) and the scaling plot;
the churn scenario's targets table and its RSS-over-time plot."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.scenarios import Row

if TYPE_CHECKING:
    from bench.churn import Churn

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
    lines = [_line(COLUMNS, widths), _line(["-" * w for w in widths], widths)]
    lines += [_line(b, widths) for b in body]
    notes = [f"- {r.scenario} on {r.server}: {r.note}" for r in rows if r.note]
    return "\n".join([*lines, "", *notes] if notes else lines)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"


def _pyplot() -> Any:
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
    plt = _pyplot()
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
    _save(plt, figure, (rate_axes, memory_axes), path)
    return True


def _save(plt: Any, figure: Any, panels: Sequence[Any], path: Path) -> None:
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


# -- churn ----------------------------------------------------------------------------------

Cell = tuple[str, bool | None]  # a figure as text, and whether it meets its target


def _rss(c: Churn) -> Cell:
    first, second = (r["growth_kb"] for r in c.rounds)
    share = second / max(1, first)
    return f"{share:.0%}: +{first / 1024:.0f} MiB, then +{second / 1024:.0f} MiB", share <= 0.10


def _expiry(c: Churn) -> Cell:
    worst = max(c.rounds, key=lambda r: r["channels_after"] / max(1, r["published"]))
    share = worst["channels_after"] / max(1, worst["published"])
    text = f"{share:.1%} ({worst['channels_after']:,.0f} of {worst['published']:,.0f})"
    return text, share <= 0.01


def _resume(what: str) -> Callable[[Churn], Cell]:
    def cell(c: Churn) -> Cell:
        few = c.resume_ms[f"{what} at {c.sizes['few']}"]
        many = c.resume_ms[f"{what} at {c.sizes['round_channels']}"]
        ratio = many / max(1e-9, few)
        return f"{ratio:.2f}x: {few:.1f} -> {many:.1f} ms", ratio <= 1.5

    return cell


def _lag(storm: str, present: str) -> Callable[[Churn], Cell]:
    """Loop lag in a window of the presence phase; `present`: "few" or "round_channels"."""

    def cell(c: Churn) -> Cell:
        name = f"{storm} at {c.sizes[present]}"
        lag = c.lag_ms[name]
        took = f"; all in {c.storm_ms[name]:,.0f} ms" if name in c.storm_ms else ""
        text = f"p99 {lag['p99']:,.1f} ms (p50 {lag['p50']:.1f}, max {lag['max']:,.1f}{took})"
        if lag["wait"] >= 0.05:
            text += f", gateway waited for a CPU {lag['wait']:.0%}"
        if late := c.storm_late.get(name, 0):
            text += f", {late} viewers not resumed within the bound"
        if refused := c.storm_refused.get(name, 0):
            text += f", {refused} viewers refused"
        met = lag["p99"] <= 10 and not late and not refused
        return text, None if storm == "idle" or present == "few" else met

    return cell


def _ingest(c: Churn) -> Cell:
    none, some = c.ingest["none"]["rate"], c.ingest["patterns"]["rate"]
    ratio = some / max(1e-9, none)
    return f"{ratio:.2f}x: {none:,.0f} -> {some:,.0f} entries/s", ratio >= 0.8


def _bystander(which: str) -> Callable[[Churn], Cell]:
    def cell(c: Churn) -> Cell:
        b = c.ingest[which]["bystander"]
        lat = b["latency_ms"]
        late = b["sent"] - b["received"]
        text = f"p50 {lat.get('p50', 0):,.1f} ms, p99 {lat.get('p99', 0):,.1f} ms"
        return text + (f", {late} of {b['sent']} not in 10 s" if late else ""), None

    return cell


def _across(c: Churn) -> Cell:
    first, again = c.across["first"], c.across["again"]
    if first.get("refused"):
        return "refused: an error answer, no stream", False
    text = f"{first['gaps']:,} gap frames, {first['logs']:,} log, {first['bytes']:,} B"
    text += f" in {first['ms']:,.0f} ms" + (", stream dropped" if first["closed"] else "")
    text += f"; resumed from its last id: {again['gaps']:,} gaps"
    return text, first["gaps"] == 1 and not first["closed"] and again["gaps"] == 0


CHURN_ROWS: tuple[tuple[str, str, Callable[[Churn], Cell]], ...] = (
    ("RSS growth of round 2, of round 1's", "<= 10 %", _rss),
    ("`logs_gateway_channels` 2x history after a round", "<= 1 % of published", _expiry),
    ("resume of one channel, many present vs few", "<= 1.5x", _resume("one channel")),
    ("wildcard subscribe, many present vs few", "<= 1.5x", _resume("wildcard subscribe")),
    ("loop lag, idle, few present", "", _lag("idle", "few")),
    ("loop lag, idle, many present", "", _lag("idle", "round_channels")),
    ("loop lag, viewers resume one channel each, few", "", _lag("one channel each", "few")),
    (
        "loop lag, viewers resume one channel each, many",
        "p99 <= 10 ms",
        _lag("one channel each", "round_channels"),
    ),
    ("loop lag, viewers resume the wildcard, few", "", _lag("wildcard", "few")),
    (
        "loop lag, viewers resume the wildcard, many",
        "p99 <= 10 ms",
        _lag("wildcard", "round_channels"),
    ),
    ("ingest to fresh channels, patterns open vs none", ">= 0.8x", _ingest),
    ("bystander latency, no patterns", "", _bystander("none")),
    ("bystander latency, patterns open", "", _bystander("patterns")),
    ("resume across a round of expired channels", "first try, 1 gap", _across),
)


def churn_table(results: Sequence[Churn]) -> str:
    """Targets and figures of the churn scenario, a column per gateway measured."""
    head = ["what", "target", *(c.server for c in results)]
    body = []
    for what, target, cell in CHURN_ROWS:
        cells = []
        for c in results:
            text, met = cell(c)
            cells.append(text if met is None else f"{text} ({'met' if met else 'missed'})")
        body.append([what, target, *cells])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = [_line(head, widths), _line(["-" * w for w in widths], widths)]
    return "\n".join(lines + [_line(b, widths) for b in body])


def plot_churn(results: Sequence[Churn], path: Path) -> bool:
    """RSS and `logs_gateway_channels` over the lifecycle phase, a line per gateway."""
    plt = _pyplot()
    if plt is None:
        return False
    figure, (rss_axes, channel_axes) = plt.subplots(1, 2, figsize=(11, 4.2))
    for c in results:
        seconds, kbs, channels = zip(*c.curve, strict=True)
        (line,) = rss_axes.plot(seconds, [kb / 1024 for kb in kbs], label=c.server)
        channel_axes.plot(seconds, channels, label=c.server, color=line.get_color())
        for at, _ in c.marks:
            rss_axes.axvline(at, color=line.get_color(), alpha=0.25, linestyle=":")
    rounds = results[0].sizes["round_channels"]
    history = results[0].sizes["history_seconds"]
    rss_axes.set(
        title=f"Two rounds of {rounds:,} fresh channels, {history:g} s history",
        xlabel="seconds",
        ylabel="gateway RSS (MiB)",
    )
    channel_axes.set(title="logs_gateway_channels", xlabel="seconds", ylabel="channels")
    _save(plt, figure, (rss_axes, channel_axes), path)
    return True
