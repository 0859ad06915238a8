"""The load generator at smoke size against a live server, so the benchmark cannot rot."""

import os
import subprocess
import sys

import orjson

from tests.conftest import LiveServer

# Transcoded and rendered frames, each checked by decoding it (the cold pass first).
PIXEL_SCENARIOS = [f"{kind}_{pass_}" for kind in ("frames_htj2k", "rendered_jpeg", "frames_jpegll")
                   for pass_ in ("cold_c16", "c1", "c16")]


def test_load_generator_smoke_run_verifies_every_response(live_server: LiveServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.load", "--base-url", live_server.dicomweb,
         "--size", "smoke", "--single-part-dicom", "--server-pid", str(os.getpid())],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = orjson.loads(result.stdout)
    assert report["scenarios"], report
    assert report["unsupported"] == []
    pixels = [name for name in report["scenarios"] if name in PIXEL_SCENARIOS]
    assert pixels == PIXEL_SCENARIOS  # all there, in this order
    for name in pixels:
        figures = report["scenarios"][name]
        assert figures["ok"] == figures["requests"] > 0, (name, figures)
    # The server runs in this process: its CPU time and memory are reported beside each figure.
    burst = report["scenarios"]["qido_under_frame_burst"]
    assert burst["ok"] > 0 and burst["burst"]["ok"] > 0, burst
    assert burst["server_cpu_s"] > 0 and burst["server_rss_peak_mb"] > 0, burst
