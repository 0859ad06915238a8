"""Storage faults against a live server whose data directory is on a small tmpfs: a full
disk fails each instance as Out of Resources (0xA700; 409, or 507 for a single-part body),
keeps nothing partial, keeps serving reads, and stores again once space is freed.

Mounting needs root (CI runs as root); elsewhere the module is skipped with the reason.
"""

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.blob_files import blob_files
from tests.conftest import run_server
from tests.dataset_factories import ct_series

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DICOM = "application/dicom"
BOUNDARY = "full-disk"
OUT_OF_RESOURCES = 0xA700
AS_STORED = {"Accept": f"{DICOM}; transfer-syntax=*"}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs, unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk` with one file; the file."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def post(root: str, files: list[bytes], single: bool = False) -> requests.Response:
    if single:
        return requests.post(f"{root}/studies", data=files[0], headers={
            "Content-Type": DICOM, "Accept": "application/dicom+json"})
    head = f"--{BOUNDARY}\r\nContent-Type: {DICOM}\r\n\r\n".encode()
    body = b"".join(head + d + b"\r\n" for d in files) + f"--{BOUNDARY}--\r\n".encode()
    return requests.post(f"{root}/studies", data=body, headers={
        "Content-Type": f'multipart/related; type="{DICOM}"; boundary={BOUNDARY}',
        "Accept": "application/dicom+json"})


def failure_reasons(response: requests.Response) -> list[int]:
    return [item["00081197"]["Value"][0]
            for item in response.json()["00081198"]["Value"]]


def test_a_full_disk_fails_instances_as_out_of_resources_and_keeps_serving(
        small_disk: Path) -> None:
    data_dir = small_disk / "data"
    kept = ct_series(3, size=8, patient="KEPT^BEFORE")
    with run_server(data_dir) as running:
        root = f"http://127.0.0.1:{running.port}/dicomweb"
        assert post(root, kept).status_code == 200
        urls = [f["00081190"]["Value"][0] for f in requests.get(f"{root}/instances").json()]
        filler = fill(small_disk)

        big = ct_series(4, size=256, patient="NO^ROOM")  # 128 KiB of pixels each
        single = post(root, big[:1], single=True)
        assert single.status_code == 507, single.text
        assert failure_reasons(single) == [OUT_OF_RESOURCES]
        multi = post(root, big[1:])
        assert multi.status_code == 409, multi.text
        assert failure_reasons(multi) == [OUT_OF_RESOURCES] * 3
        assert "could not keep" in multi.json()["00081198"]["Value"][0]["00091097"]["Value"][0]
        assert list((data_dir / "staging").iterdir()) == []

        # reads go on: search, metadata and every stored instance, byte for byte
        assert len(requests.get(f"{root}/instances").json()) == 3
        study = urls[0].split("/studies/")[1].split("/")[0]
        assert requests.get(f"{root}/studies/{study}/metadata").status_code == 200
        assert sorted(requests.get(u, headers=AS_STORED).content for u in urls) == sorted(kept)

        # a delete on a full disk either goes through whole or changes nothing
        deleted = requests.delete(urls[0])
        assert deleted.status_code in (200, 507), deleted.text
        gone = deleted.status_code == 200
        assert requests.get(urls[0], headers=AS_STORED).status_code == (404 if gone else 200)

        filler.unlink()
        assert post(root, big).status_code == 200
        assert len(requests.get(f"{root}/instances").json()) == 7 - gone
        assert len(blob_files(data_dir)) == 7 - gone
        assert list((data_dir / "staging").iterdir()) == []


def test_a_read_only_data_directory_serves_reads_and_refuses_writes_clearly(
        small_disk: Path) -> None:
    data_dir = small_disk / "data"
    kept = ct_series(3, size=8, patient="READ^ONLY")
    with run_server(data_dir) as running:
        root = f"http://127.0.0.1:{running.port}/dicomweb"
        assert post(root, kept).status_code == 200
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with run_server(data_dir) as running:
        base = f"http://127.0.0.1:{running.port}"
        root = f"{base}/dicomweb"
        found = requests.get(f"{root}/instances").json()
        urls = [f["00081190"]["Value"][0] for f in found]
        assert sorted(requests.get(u, headers=AS_STORED).content for u in urls) == sorted(kept)
        assert requests.get(f"{urls[0]}/rendered").status_code == 200

        stored = post(root, ct_series(1, size=8))
        assert stored.status_code == 409
        [item] = stored.json()["00081198"]["Value"]
        assert item["00081197"]["Value"] == [OUT_OF_RESOURCES]
        assert "Read-only" in item["00091097"]["Value"][0]
        deleted = requests.delete(urls[0])
        assert deleted.status_code == 503, deleted.text
        assert deleted.json()["error"]["status"] == "UNAVAILABLE"
        assert "read-only" in deleted.json()["error"]["message"]
        created = requests.post(f"{base}/v1/projects/p/locations/l/datasets",
                                params={"datasetId": "new"}, json={})
        assert created.status_code == 503, created.text
        assert len(requests.get(f"{root}/instances").json()) == 3
    verified = subprocess.run([sys.executable, "-m", "pacs", "verify", "--data",
                               str(data_dir), "--grace", "0"], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr
