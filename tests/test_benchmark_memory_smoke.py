"""`benchmarks.memory` at smoke size, so the memory benchmark cannot rot: every phase must
complete and verify. No memory or speed is asserted (machines differ), only that the figures
are there."""

import subprocess
import sys
from pathlib import Path

import orjson

from benchmarks.servers import REPO

PHASES = ["stow_multipart", "instance_stow", "instance_retrieve", "series_retrieve"]


def test_memory_smoke_run_verifies_every_phase(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--size", "smoke", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    phases = orjson.loads(out.read_bytes())["phases"]
    assert list(phases) == PHASES
    for name, figures in phases.items():
        assert figures["verified"], (name, figures)
        assert figures["server_rss_peak_mb"] > 0 and figures["mb"] > 0, (name, figures)
        assert {p["role"] for p in figures["peak_processes"]} >= {"supervisor", "worker"}, name
    assert "| series_retrieve |" in result.stdout
