"""`benchmarks.dimse_get_memory` at a small size, so the C-GET memory figure cannot rot: the
instance comes back whole and each figure is there; never a size or a speed."""

import subprocess
import sys
from pathlib import Path

import orjson

from benchmarks.servers import REPO


def test_dimse_get_memory_smoke_run_brings_the_instance_back(tmp_path: Path) -> None:
    out = tmp_path / "dimse_get_memory.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.dimse_get_memory", "--mb", "8", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert result.stdout.startswith("| instance MiB |")
    document = orjson.loads(out.read_bytes())
    assert document["whole"] and document["received_mb"] >= document["instance_mb"] - 0.1
    assert document["server_rss_peak_mb"] >= document["server_rss_idle_mb"] > 0
