"""`benchmarks.compare` at smoke size against a real Orthanc, so the comparison and its chart
cannot rot. It checks that the run completes and every request of ours succeeds, never a speed.

It starts its own Orthanc on the fixed port 18042 (`.ci/run` installs the Debian packages), so
it cannot run beside another Orthanc, nor in parallel with itself."""

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from PIL import Image

from benchmarks.servers import ORTHANC_PORT, REPO, listening

# Orthanc 1.10's GDCM plugin crashes on JPEG-lossless frames (benchmarks/README.md), so these
# scenarios, which run last, may fail on Orthanc; every other request must succeed on both.
ORTHANC_CRASHES_ON = "frames_jpegll_"
RESOURCE_FIGURES = ("client_cpu_s", "server_cpu_s", "server_rss_peak_mb", "server_pss_peak_mb")


def test_compare_smoke_run_writes_results_and_chart(tmp_path: Path) -> None:
    if listening(ORTHANC_PORT):
        pytest.fail(f"port {ORTHANC_PORT} is taken, most likely by another Orthanc: stop it "
                    "(shared/tools/orthanc/stop_orthanc.sh); this test starts its own there")
    out, chart = tmp_path / "compare.json", tmp_path / "compare.png"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.compare", "--size", "smoke", "--out", str(out),
         "--plot", str(chart)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    # 1 when a request failed: Orthanc's crash, or ours, which the checks below tell apart.
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-3000:]
    document = orjson.loads(out.read_bytes())
    ours, orthanc = document["targets"]["ours"], document["targets"]["orthanc"]
    assert list(ours["scenarios"]) == list(orthanc["scenarios"])
    assert {"retrieve_series_c50", "qido_under_frame_burst", "stow_small_single_c16"} <= set(
        ours["scenarios"])
    assert (ours["errors"], ours["verification_failures"], ours["unsupported"]) == (0, 0, [])
    for name, figures in orthanc["scenarios"].items():
        if not name.startswith(ORTHANC_CRASHES_ON):
            assert figures["errors"] == figures["verification_failures"] == 0, (name, figures)
    for report in (ours, orthanc):
        figures = report["scenarios"]["retrieve_series_c50"]
        assert all(figures[key] >= 0 for key in RESOURCE_FIGURES), figures
        assert figures["server_rss_peak_mb"] > 0, figures
        assert report["scenarios"]["qido_under_frame_burst"]["burst"]["ok"] > 0
    with Image.open(chart) as image:
        assert image.format == "PNG"
        image.load()
