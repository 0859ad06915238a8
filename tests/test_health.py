"""Health probes: /livez while the process answers, /healthz and /readyz only while the
index and the blob store can be reached (503 naming what cannot, then 200 again). Readiness
is checked in the background (`readiness_seconds`), so the probes see a change at the next
check."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import LiveServer, run_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with run_server(tmp_path / "data", readiness_seconds=0.1) as running:
        yield LiveServer(f"http://127.0.0.1:{running.port}", tmp_path / "data")


def _soon(url: str, status: int) -> requests.Response:
    """The probe's answer once it is `status` (the next background check), within 10 s."""
    deadline = time.monotonic() + 10
    while True:
        answer = requests.get(url)
        if answer.status_code == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def test_readiness_follows_the_blob_store_and_liveness_does_not(
        server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    base = server.base
    for probe in ("/healthz", "/readyz", "/livez"):
        assert requests.get(base + probe).status_code == 200
    blobs = server.data_dir / "blobs"
    blobs.rename(blobs.with_name("blobs-away"))  # a volume that went away
    try:
        for probe in ("/healthz", "/readyz"):
            down = _soon(base + probe, 503)
            assert down.status_code == 503
            error = down.json()["error"]
            assert error["status"] == "UNAVAILABLE" and "blob store" in error["message"]
        assert requests.get(base + "/livez").status_code == 200
    finally:
        blobs.with_name("blobs-away").rename(blobs)
    assert _soon(base + "/healthz", 200).status_code == 200
    # the operator reads each change once in the log, not once per check
    changes = [r.getMessage() for r in caplog.records if "ready" in r.getMessage()]
    assert len(changes) == 2 and "blob store" in changes[0], changes
    assert changes[0].startswith("not ready: ") and changes[1].startswith("ready again")


def test_readiness_follows_the_index(server: LiveServer) -> None:
    index = server.data_dir / "index.sqlite3"
    index.rename(index.with_name("index-away"))
    try:
        down = _soon(server.base + "/readyz", 503)
        assert down.status_code == 503 and "index" in down.json()["error"]["message"]
    finally:
        index.with_name("index-away").rename(index)
    assert _soon(server.base + "/readyz", 200).status_code == 200

