"""A benchmark run as its user runs it, for the smoke tests that keep it from rotting."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from benchmarks.servers import REPO


def run_benchmark(module: str, *args: str, out: Path, timeout: float = 300) -> tuple[str, Any]:
    """`python -m benchmarks.MODULE ARGS --out OUT`: what it printed and the JSON document it
    wrote; the test fails with the end of its output if it exits non-zero."""
    result = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args, "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout, orjson.loads(out.read_bytes())
