"""The load generator's C part (bench/sse_subscribers.c), compiled on first use into
build/bench/ with the machine's C compiler, and again whenever the source is newer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("sse_subscribers.c")
BUILT = Path(__file__).resolve().parent.parent / "build" / "bench" / "sse_subscribers"
FLAGS = ("-O2", "-Wall", "-Wextra", "-Werror")


def subscribers() -> Path:
    """The C subscribers' executable, built when missing or older than its source."""
    if BUILT.exists() and BUILT.stat().st_mtime >= SOURCE.stat().st_mtime:
        return BUILT
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("bench: the C subscribers need a C compiler: apt-get install gcc")
    BUILT.parent.mkdir(parents=True, exist_ok=True)
    partial = BUILT.with_suffix(".partial")
    done = subprocess.run(
        [compiler, *FLAGS, "-o", str(partial), str(SOURCE)], capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"bench: {SOURCE.name} did not compile:\n{done.stderr}")
    partial.replace(BUILT)
    return BUILT
