"""The black-box conformance suite (conformance/) passes against this server's default (full)
store with no failure."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[1]
KNOWN_DEVIATIONS: set[str] = set()


def test_conformance_suite_passes(live_server: LiveServer) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "conformance", "--base-url", live_server.dicomweb,
         "-p", "no:cacheprovider", "-q", "-rf"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    output = run.stdout + run.stderr
    failed = {line.split()[1] for line in run.stdout.splitlines() if line.startswith("FAILED")}
    assert failed == KNOWN_DEVIATIONS, output[-3000:]
    summary = run.stdout.splitlines()[-1]
    assert "failed" not in summary and " passed" in summary, output[-3000:]
