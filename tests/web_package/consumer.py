"""The consumer app in tests/web_package: the packed package installed, and its tools run.

`npm pack` makes the tarball a team would install from a registry; `npm install --no-save`
puts it into the app's node_modules (scripts/test has `npm ci`-ed the rest from the lock
file), so every test imports `logs-gateway-client` exactly as an app does.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import ISSUER, SECRET

APP = Path(__file__).resolve().parent
PACKAGE = APP.parent.parent / "clients" / "web"
NPM_FLAGS = ["--no-audit", "--no-fund", "--loglevel=error"]


def npm() -> str:
    found = shutil.which("npm")
    if found is None:
        raise RuntimeError("npm is missing (Node 20 and npm are part of this project's machine)")
    return found


def require_modules(folder: Path) -> None:
    if not (folder / "node_modules").is_dir():
        raise RuntimeError(f"npm packages missing: run scripts/test, or npm ci --prefix {folder}")


@functools.cache
def installed() -> Path:
    """Pack clients/web and install the tarball into the app (once per test run); return
    the tarball, kept for the tests that look inside it."""
    require_modules(APP)
    require_modules(APP / "react18")
    out = Path(tempfile.mkdtemp(prefix="logs-gateway-client-"))
    packed = subprocess.run(
        [npm(), "pack", str(PACKAGE), "--pack-destination", str(out), "--json", *NPM_FLAGS],
        cwd=APP,
        capture_output=True,
        text=True,
        check=True,
    )
    tarball = out / str(json.loads(packed.stdout)[0]["filename"])
    subprocess.run(
        [npm(), "install", "--no-save", "--offline", str(tarball), *NPM_FLAGS],
        cwd=APP,
        capture_output=True,
        check=True,
    )
    return tarball


def gateway_env(http: str) -> dict[str, str]:
    """What the JS tests read (tests/web_package/harness.js): the gateway and how to sign
    tokens it accepts (the test secret), without the colours that would hide the counts."""
    return os.environ | {
        "LOGS_GATEWAY_URL": http,
        "LOGS_GATEWAY_JWT_SECRET": SECRET,
        "LOGS_GATEWAY_ISSUER": ISSUER,
        "NO_COLOR": "1",
        "FORCE_COLOR": "0",
    }


def run(command: list[str], env: dict[str, str] | None = None) -> str:
    """Run a tool of the app; fail with its whole output if it fails."""
    done = subprocess.run(command, cwd=APP, env=env, capture_output=True, text=True, timeout=110)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{output}"
    return output


def tool(name: str) -> str:
    return str(APP / "node_modules" / ".bin" / name)


def declared_tests(*files: Path) -> int:
    """How many tests the files declare (`test(` at the start of a line)."""
    return sum(len(re.findall(r"^test\(", f.read_text(), re.MULTILINE)) for f in files)
