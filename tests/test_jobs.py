"""Long-running operations as jobs (issue 15): `:import` answers with the operation's name
at once and the work runs after it; the server running it is SIGKILLed midway, and another
server on the same archive (a second process on one data directory, or a replica on one
PostgreSQL and S3) takes the job over when its lease lapses and finishes it from its last
saved progress: every file stored once, the counters exact. A cancel stops a job and keeps
what it did."""

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.served_process import Replica, free_port, running
from tests.storage import postgres_server, s3_server
from tests.stow_ledger import Sent, new_instances

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DATASET = "/v1/projects/local/locations/local/datasets/default"
STORE = f"{DATASET}/dicomStores/default"
FILES = 1500  # long enough to be caught midway on a machine a few times faster
POLL = ["--job-poll-seconds", "0.3"]


@pytest.fixture(params=["embedded", "postgresql+s3"])
def placement(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """The arguments and environment that put a server on one shared archive."""
    if request.param == "embedded":
        return ["--data", str(tmp_path / "data")], dict(os.environ)
    bucket = s3_server.shared()
    return (["--index", postgres_server.index_dsn(tmp_path),
             "--blobs", f"s3://{s3_server.BUCKET}/{uuid.uuid4().hex[:12]}"],
            {**os.environ, **bucket.env})


@pytest.fixture
def two_servers(request: pytest.FixtureRequest, tmp_path: Path,
                placement: tuple[list[str], dict[str, str]]) -> Iterator[list[Replica]]:
    """Two servers on one archive, with the job lease `request.param` (seconds)."""
    args, env = placement
    shared = [*args, "--gcs-root", str(tmp_path / "gcs"), "--workers", "1", *POLL,
              "--job-lease-seconds", str(request.param)]
    data = [["--data", str(tmp_path / f"data{n}")] if "--index" in args else [] for n in (0, 1)]
    with running([Replica(n, free_port(), [*shared, *data[n]], env,
                          log=tmp_path / f"server{n}.log") for n in (0, 1)]) as servers:
        yield servers


def bucket_of(files: list[Sent], root: Path) -> None:
    for number, sent in enumerate(files):
        path = root / "bucket" / "in" / f"{number // 100:03}" / f"{number:05}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(sent.data)


def operation(base: str, name: str) -> dict[str, Any]:
    answer = requests.get(f"{base}/v1/{name}", timeout=30)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def polled(base: str, name: str, until: Any, seconds: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while not until(found := operation(base, name)):
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    return found


def success(found: dict[str, Any]) -> int:
    return int(found["metadata"]["counter"].get("success", 0))


def stored_count(base: str) -> int:
    answer = requests.get(f"{base}{STORE}:getDICOMStoreMetrics", timeout=30)
    return int(answer.json().get("instanceCount", 0))


@pytest.mark.parametrize(("two_servers", "end"), [(1.5, "killed"), (600, "stopped")],
                         indirect=["two_servers"], ids=["SIGKILL", "SIGTERM"])
def test_an_import_outlives_the_server_running_it(tmp_path: Path, two_servers: list[Replica],
                                                  end: str) -> None:
    """Killed, the server's job is taken over once its lease (1.5 s here) lapses; stopped,
    it hands the job over on its way out, and the other takes it at once (the lease is ten
    minutes here)."""
    files = new_instances(FILES)
    bucket_of(files, tmp_path / "gcs")
    first, second = two_servers
    started = requests.post(f"{first.base}{STORE}:import",
                            json={"gcsSource": {"uri": "gs://bucket/in/**.dcm"}}, timeout=30)
    assert started.status_code == 200, started.text
    name = started.json()["name"]
    running = polled(second.base, name, lambda op: success(op) >= 50)
    assert "done" not in running and running["metadata"]["counter"]["pending"]
    holder = next(s for s in two_servers
                  if s.log and f"operation {name}: running here" in s.log.read_text())
    other = second if holder is first else first
    holder.kill() if end == "killed" else holder.stop()
    done = polled(other.base, name, lambda op: op.get("done"), seconds=60)
    assert "error" not in done, done
    assert done["metadata"]["counter"] == {"success": str(FILES)}
    assert other.log is not None and f"operation {name}: taken over (claim 2)" in \
        other.log.read_text()
    assert stored_count(other.base) == FILES
    assert holder.log is not None
    assert (f"operation {name}: handed over on the way out" in holder.log.read_text()) == (
        end == "stopped")
    for sent in files[::97]:
        answer = requests.get(f"{other.base}/dicomweb{sent.path}", timeout=30, headers={
            "Accept": "application/dicom; transfer-syntax=*"})
        assert answer.status_code == 200 and answer.content == sent.data


def test_a_cancelled_import_stops_and_keeps_what_it_stored(tmp_path: Path) -> None:
    files = new_instances(FILES)
    bucket_of(files, tmp_path / "gcs")
    server = Replica(0, free_port(), ["--data", str(tmp_path / "data"), "--gcs-root",
                                      str(tmp_path / "gcs"), "--job-lease-seconds", "0.6"],
                     dict(os.environ), log=tmp_path / "server.log")
    server.start()
    try:
        name = requests.post(f"{server.base}{STORE}:import", timeout=30,
                             json={"gcsSource": {"uri": "gs://bucket/in/**"}}).json()["name"]
        polled(server.base, name, lambda op: success(op) >= 20)
        answer = requests.post(f"{server.base}/v1/{name}:cancel", json={}, timeout=30)
        assert answer.status_code == 200 and answer.json() == {}
        done = polled(server.base, name, lambda op: op.get("done"))
        assert done["error"]["code"] == 1 and "cancelled" in done["error"]["message"]
        assert done["metadata"]["cancelRequested"] is True
        kept = success(done)
        assert 20 <= kept < FILES and "response" not in done
        assert stored_count(server.base) == kept
        again = requests.post(f"{server.base}/v1/{name}:cancel", json={}, timeout=30)
        assert again.status_code == 200  # finished: nothing to stop, still Empty
        assert operation(server.base, name) == done
    finally:
        server.kill()
