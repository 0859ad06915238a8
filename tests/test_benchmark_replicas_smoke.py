"""The replica benchmark at smoke size, so it cannot rot, and so deploy/nginx.conf is run in
front of real replicas: every store and search of each setup must be answered and verified.
Never how fast."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.storage import postgres_server


def test_replica_benchmark_verifies_every_request_of_every_setup(tmp_path: Path) -> None:
    if postgres_server.binaries() is None:
        postgres_server.missing("no PostgreSQL server binaries (apt-get install postgresql)")
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        reason = "nginx is missing: apt-get install nginx-light (.ci/run does)"
        if os.environ.get("PACS_REQUIRE_NGINX"):
            pytest.fail(reason)
        pytest.skip(reason)
    out = tmp_path / "replicas.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.replicas", "--series", "3", "--instances", "3",
         "--searches", "30", "--concurrency", "4", "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    document = json.loads(out.read_text())
    assert [r["setup"].split(",")[0] for r in document["results"]] == [
        "embedded (SQLite + files)", "PostgreSQL + S3", "PostgreSQL + S3"]
    for result in document["results"]:
        stow, qido = result["stow"], result["qido"]
        assert (stow["ok"], stow["requests"]) == (9, 9), result
        assert (qido["ok"], qido["requests"]) == (30, 30), result
