"""The generated stubs in clients/python are exactly what grpcio-tools makes from protos/."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "clients" / "python" / "logs_gateway" / "v1"


def test_stubs_regenerate_without_diff(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        [str(ROOT / "scripts" / "gen-protos"), str(out)],
        check=True,
        env=os.environ | {"PYTHON": sys.executable},
    )
    fresh = out / "logs_gateway" / "v1"
    names = sorted(p.name for p in fresh.iterdir())
    assert names == ["logs_pb2.py", "logs_pb2.pyi", "logs_pb2_grpc.py"]
    comparison = filecmp.dircmp(fresh, GENERATED)
    mismatch = filecmp.cmpfiles(fresh, GENERATED, names, shallow=False)[1:]
    assert mismatch == ([], []), f"stale stubs, run scripts/gen-protos: {comparison.diff_files}"
