"""`benchmarks.dimse_store` at smoke size against our gateway and a real Orthanc, so the
C-STORE comparison cannot rot. It checks that every file reached both archives, never a speed.

It starts its own Orthanc on the fixed ports 18042 and 14242 (`.ci/run` installs the Debian
packages), so it cannot run beside another Orthanc, nor in parallel with itself."""

import os
from pathlib import Path

import pytest

from benchmarks.dimse_store import MODES, PARTS, SIZES, dcmtk_storescu
from benchmarks.servers import ORTHANC_PORT, listening
from tests.benchmark_runs import run_benchmark


def test_dimse_store_smoke_run_stores_every_file_on_both(tmp_path: Path) -> None:
    if dcmtk_storescu() is None:
        reason = "dcmtk's storescu is missing: apt-get install dcmtk (.ci/run does)"
        if os.environ.get("PACS_REQUIRE_DCMTK"):
            pytest.fail(reason)
        pytest.skip(reason)
    if listening(ORTHANC_PORT):
        pytest.fail(f"port {ORTHANC_PORT} is taken, most likely by another Orthanc: stop it "
                    "(shared/tools/orthanc/stop_orthanc.sh); this test starts its own there")
    printed, document = run_benchmark("dimse_store", "--size", "smoke",
                                      out=tmp_path / "dimse_store.json")
    assert printed.startswith("| scenario, storescu |")
    scenarios, rounds = SIZES["smoke"]
    keys = [f"{s.name}, {mode}" for s in scenarios for mode in MODES]
    assert list(document["summary"]) == keys
    for key in keys:
        row = document["summary"][key]
        assert row["ours"]["all_stored"] and row["orthanc"]["all_stored"], (key, row)
        assert row["ratio"] > 0 and row["ours"]["gateway_cpu_s"] > 0, (key, row)
    runs = document["runs"]
    assert len(runs) == len(keys) * 2 * rounds
    for run in runs:
        assert run["stored"] == run["instances"] > 0, run
        assert run["storescu_exit_codes"] == [0] * (1 if run["mode"] == MODES[0] else PARTS), run
    assert {run["server"] for run in runs} == {"ours", "orthanc"}
