"""The load generator's C parts, compiled on first use into build/bench/ with the machine's C
compiler, and again whenever their source (or a header beside it) is newer: the SSE subscribers
(bench/sse_subscribers.c) and the single-entry POST publisher (bench/post_load.c)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = HERE.parent / "build" / "bench"
FLAGS = ("-O2", "-Wall", "-Wextra", "-Werror")


def subscribers() -> Path:
    """The C subscribers' executable."""
    return built("sse_subscribers")


def posters() -> Path:
    """The C POST publisher's executable."""
    return built("post_load")


def built(name: str) -> Path:
    """The executable of bench/`name`.c, built when missing or older than its source or
    the headers of bench/."""
    source, binary = HERE / f"{name}.c", BUILD / name
    newest = max(p.stat().st_mtime for p in (source, *HERE.glob("*.h")))
    if binary.exists() and binary.stat().st_mtime >= newest:
        return binary
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("bench: the C load generator needs a C compiler: apt-get install gcc")
    BUILD.mkdir(parents=True, exist_ok=True)
    partial = binary.with_suffix(".partial")
    done = subprocess.run(
        [compiler, *FLAGS, "-o", str(partial), str(source)], capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"bench: {source.name} did not compile:\n{done.stderr}")
    partial.replace(binary)
    return binary
