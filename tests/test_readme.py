"""The README's configuration table names every setting, with its flag, variable and default;
its pattern section explains both wildcards on the demo's channels."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.app import config as cfg

README = Path(__file__).resolve().parent.parent / "README.md"
ROW = re.compile(r"^\| `(--[a-z-]+)` \| `(LOGS_GATEWAY_[A-Z_]+)` \| ([^|]+) \|", re.MULTILINE)


def shown(default: object) -> str:
    return f"{default:g}" if isinstance(default, float) else str(default)


def test_configuration_table_lists_every_setting() -> None:
    rows = {flag: (env, default.strip()) for flag, env, default in ROW.findall(README.read_text())}
    assert list(rows) == [s.flag for s in cfg.SETTINGS]  # all of them, in the same order
    for s in cfg.SETTINGS:
        env, default = rows[s.flag]
        assert env == s.env
        if s.default not in ("", False):  # the table shows a dash and "off"
            assert default == f"`{shown(s.default)}`", s.name


def section(title: str) -> str:
    """One `## title` section of the README, whitespace collapsed (lines wrap anywhere)."""
    text = README.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    return " ".join(text.split())


def test_channels_and_patterns_explains_both_wildcards() -> None:
    text = section("Channels and patterns")
    assert "`*` is any one segment" in text
    assert "`>`, only as the last segment, any one or more" in text
    for channel in ("etl:workspace123:workflow456", "faas:workspace123:function789"):
        assert f"`logs:{channel}`" in text
    # The case that surprised a user: `>` needs at least one segment after the workspace.
    assert "`logs:*:workspace123:>` holds the first two demo channels but not" in text
    assert "`logs:analytics:workspace123` (nothing follows its workspace)" in text
