"""The load generator at smoke size against a live server, so the benchmark cannot rot."""

import subprocess
import sys

import orjson

from tests.conftest import LiveServer


def test_load_generator_smoke_run_verifies_every_response(live_server: LiveServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.load", "--base-url", live_server.dicomweb,
         "--size", "smoke", "--single-part-dicom"],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = orjson.loads(result.stdout)
    assert report["scenarios"], report
