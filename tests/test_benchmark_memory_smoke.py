"""`benchmarks.memory` at smoke size, so the memory benchmark cannot rot: every phase must
complete and verify. No memory or speed is asserted (machines differ), only that the figures
are there."""

from pathlib import Path

from tests.benchmark_runs import run_benchmark

PHASES = ["stow_multipart", "instance_stow", "instance_retrieve", "series_retrieve"]


def test_memory_smoke_run_verifies_every_phase(tmp_path: Path) -> None:
    printed, document = run_benchmark("memory", "--size", "smoke", out=tmp_path / "memory.json")
    phases = document["phases"]
    assert list(phases) == PHASES
    for name, figures in phases.items():
        assert figures["verified"], (name, figures)
        assert figures["server_rss_peak_mb"] > 0 and figures["mb"] > 0, (name, figures)
        assert {p["role"] for p in figures["peak_processes"]} >= {"supervisor", "worker"}, name
    assert "| series_retrieve |" in printed
