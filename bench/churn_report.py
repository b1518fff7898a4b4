"""The churn scenario's figures (`Churn`), its targets table and its RSS-over-time plot."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import pyplot, save_figure, table_line


@dataclass
class Churn:
    """The figures of one gateway (one commit) through every phase."""

    server: str  # the commit measured
    kind: str  # "gateway" (memory broker) or "gateway+redis"
    rounds: list[dict[str, float]] = field(default_factory=list)
    curve: list[tuple[float, int, int]] = field(default_factory=list)  # (s, RSS kB, channels)
    marks: list[tuple[float, str]] = field(default_factory=list)  # (s, what started)
    resume_ms: dict[str, float] = field(default_factory=dict)  # medians, by what and present
    lag_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # percentiles by phase
    storm_ms: dict[str, float] = field(default_factory=dict)  # slowest viewer of each storm
    storm_late: dict[str, int] = field(default_factory=dict)  # viewers not resumed in the bound
    storm_refused: dict[str, int] = field(default_factory=dict)  # viewers answered with an error
    ingest: dict[str, dict[str, Any]] = field(default_factory=dict)  # "none", "patterns"
    across: dict[str, dict[str, Any]] = field(default_factory=dict)  # "first", "again"
    sizes: dict[str, Any] = field(default_factory=dict)
    load: dict[str, float] = field(default_factory=dict)  # 1-minute load average after a phase
    watched: int = 0  # log events the presence phase's workspace watcher received


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
            try:
                text, met = cell(c)
            except (KeyError, ValueError):  # its phase was left out (--phases)
                text, met = "not measured", None
            cells.append(text if met is None else f"{text} ({'met' if met else 'missed'})")
        body.append([what, target, *cells])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = [table_line(head, widths), table_line(["-" * w for w in widths], widths)]
    return "\n".join(lines + [table_line(b, widths) for b in body])


def plot_churn(results: Sequence[Churn], path: Path) -> bool:
    """RSS and `logs_gateway_channels` over the lifecycle phase, a line per gateway."""
    plt = pyplot()
    if plt is None or not all(c.curve for c in results):  # no lifecycle phase (--phases)
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
    save_figure(plt, figure, (rss_axes, channel_axes), path)
    return True
