"""`benchmarks.dimse_get_memory` at a small size, so the C-GET memory figure cannot rot: the
instance comes back whole and each figure is there; never a size or a speed."""

from pathlib import Path

from tests.benchmark_runs import run_benchmark


def test_dimse_get_memory_smoke_run_brings_the_instance_back(tmp_path: Path) -> None:
    printed, document = run_benchmark("dimse_get_memory", "--mb", "8",
                                      out=tmp_path / "dimse_get_memory.json")
    assert printed.startswith("| instance MiB |")
    assert document["whole"] and document["received_mb"] >= document["instance_mb"] - 0.1
    assert document["server_rss_peak_mb"] >= document["server_rss_idle_mb"] > 0
