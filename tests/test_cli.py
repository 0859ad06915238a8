"""`pacs serve` as a newcomer runs it: a subprocess with worker processes on a real port."""

import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import pacs
from tests.dataset_factories import ct_series
from tests.served_process import served as pacs_serve

STORE = "projects/p1/locations/l1/datasets/d1/dicomStores/s1"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    data = tmp_path_factory.mktemp("cli") / "data"
    with pacs_serve("--data", str(data), "--store", STORE, "--workers", "2") as server:
        yield server.base, str(data)
    print(server.output)
    assert f"{server.base}/dicomweb" in server.output
    assert f"{server.base}/v1/{STORE}/dicomWeb" in server.output


def test_workers_share_one_archive(served: tuple[str, str]) -> None:
    """Concurrent stores land in whichever worker; every one is then visible to all."""
    base, _ = served
    files = ct_series(24, size=32)

    def store(data: bytes) -> int:
        return requests.post(f"{base}/dicomweb/studies", data=data,
                             headers={"Content-Type": "application/dicom"}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(store, files)) == {200}
    for _ in range(6):  # several requests, so both workers answer some
        found = requests.get(f"{base}/dicomweb/instances", params={"PatientID": "GEN-0001"})
        assert found.status_code == 200 and len(found.json()) == 24


def test_store_given_on_the_command_line_is_served(served: tuple[str, str]) -> None:
    base, _ = served
    assert requests.get(f"{base}/v1/{STORE}/dicomWeb/studies").status_code == 204
    missing = requests.get(f"{base}/v1/projects/p1/locations/l1/datasets/d1/dicomStores/nope/"
                           "dicomWeb/studies")
    assert missing.status_code == 404
    assert missing.json()["error"]["status"] == "NOT_FOUND"


def test_data_dir_holds_the_index_and_blobs(served: tuple[str, str]) -> None:
    _, data = served
    assert (Path(data) / "index.sqlite3").is_file()
    assert (Path(data) / "blobs").is_dir()


def test_version_is_one_line() -> None:
    done = subprocess.run([sys.executable, "-m", "pacs", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"pacs {pacs.__version__}"


def test_metrics_of_every_worker_are_scraped_together(served: tuple[str, str]) -> None:
    """With several workers, each scrape (whichever worker answers it) counts the requests
    all of them answered."""
    base, _ = served
    before = requests_counted(base)
    for _ in range(20):  # spread over both workers by the kernel's accept queue
        assert requests.get(f"{base}/dicomweb/studies").status_code in (200, 204)
    for _ in range(4):
        assert requests_counted(base) - before == 20


def requests_counted(base: str) -> float:
    """QIDO study searches counted so far, as /metrics says."""
    text = requests.get(f"{base}/metrics").text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "pacs_http_requests_total"
               and sample.labels["route"] == "/studies" and sample.labels["method"] == "GET")


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["verify"], ["import", "."],
                                     ["export", "--all", "out"], ["stores", "list"]])
def test_a_data_directory_it_cannot_use_is_one_clear_line(tmp_path: Path,
                                                         command: list[str]) -> None:
    """A file given as --data, or an index written by a newer version: one line, no
    traceback, nothing changed."""
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("x")
    newer = tmp_path / "newer"
    newer.mkdir()
    with closing(sqlite3.connect(newer / "index.sqlite3")) as conn, conn:
        conn.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
        conn.execute("INSERT INTO migrations VALUES ('9999_from_the_future', '')")
    for data, said in ((not_a_directory, "is a file"), (newer, "newer version of pacs")):
        done = subprocess.run([sys.executable, "-m", "pacs", *command, "--data", str(data)],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert done.returncode != 0 and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not_a_directory.read_text() == "x"


def test_stores_are_created_listed_filled_and_deleted_from_the_command_line(
        tmp_path: Path) -> None:
    data, name = str(tmp_path / "data"), "projects/p/locations/l/datasets/d/dicomStores/ct"

    def pacs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pacs", *args], capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)
    assert pacs("stores", "--data", data, "create", name, "--profile", "google").returncode == 0
    again = pacs("stores", "--data", data, "create", name)
    assert again.returncode == 1 and again.stderr.strip() == f"pacs: store {name} exists already"
    source = tmp_path / "in"
    source.mkdir()
    for number, file in enumerate(ct_series(3, size=8)):
        (source / f"{number}.dcm").write_bytes(file)
    assert pacs("import", str(source), "--data", data, "--store", name, "--quiet"
                ).returncode == 0
    listed = dict(line.split("\t", 1) for line in
                  pacs("stores", "--data", data, "list").stdout.splitlines())
    assert listed[name].startswith("google\t3 instances\t")
    assert listed[STORE_DEFAULT].startswith("full\t0 instances\t")
    assert pacs("stores", "--data", data, "delete", name).returncode == 0
    gone = pacs("stores", "--data", data, "delete", name)
    assert gone.returncode == 1 and "not found" in gone.stderr and "Traceback" not in gone.stderr
    assert name not in pacs("stores", "--data", data, "list").stdout


STORE_DEFAULT = "projects/local/locations/local/datasets/default/dicomStores/default"


def test_a_port_in_use_is_one_clear_line_and_nothing_is_opened(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "pacs", "serve", "--port", str(port),
                               "--data", str(tmp_path / "data"), "--workers", "1"],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode != 0
    assert done.stderr.strip() == (f"pacs: cannot listen on 127.0.0.1:{port}: Address already "
                                   "in use (another server is using it; choose another with "
                                   "--port)")
    assert not (tmp_path / "data").exists()
