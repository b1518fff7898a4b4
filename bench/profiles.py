"""`--profile DIR`: py-spy samples every gateway process while a scenario runs.

Each profile is kept as collapsed stacks (`<step>-<pid>.txt`, for flame graph tools) and
summed up beside it (`.top.txt`): the functions with the most samples on their own and
with their callees, which is what says where a missed target's time goes.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from bench.servers import LOAD_CORES

RATE = 250  # samples per second
TOP = 40


# Beside this Python (a venv's bin/) or on PATH.
_PY_SPY = str(Path(sys.executable).with_name("py-spy"))
if not Path(_PY_SPY).exists():
    _PY_SPY = shutil.which("py-spy") or "py-spy"


def available() -> bool:
    return Path(_PY_SPY).exists()


@contextlib.contextmanager
def sampling(folder: Path, label: str, pids: list[int]) -> Iterator[None]:
    """py-spy on each of `pids` (pinned to the load core) until the block ends."""
    folder.mkdir(parents=True, exist_ok=True)
    name = "".join(c if c.isalnum() else "-" for c in label)
    outputs = [folder / f"{name}-{pid}.txt" for pid in pids]
    pinned = ["taskset", "-c", str(LOAD_CORES[0]), _PY_SPY, "record"]
    options = ["--rate", str(RATE), "--format", "raw", "--nonblocking"]
    spies = [
        subprocess.Popen(
            [*pinned, "--pid", str(pid), *options, "--output", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid, out in zip(pids, outputs, strict=True)
    ]
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy, out in zip(spies, outputs, strict=True):
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
            if out.exists():
                out.with_suffix(".top.txt").write_text(summary(out))


def summary(collapsed: Path) -> str:
    """Top functions by own samples and by samples including callees."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{samples} samples", "", "own:"]
    lines += [f"{n / samples:6.1%}  {f}" for f, n in own.most_common(TOP)]
    lines += ["", "with callees:"]
    lines += [f"{n / samples:6.1%}  {f}" for f, n in total.most_common(TOP)]
    return "\n".join(lines) + "\n"
