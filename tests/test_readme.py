"""The README's configuration table names every setting, with its flag, variable and default."""

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
