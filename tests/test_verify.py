"""`pacs verify [--repair]` on a real data directory: a damaged archive (a blob corrupted by
one byte, a blob deleted, orphan blobs valid and not, a phantom study, a staging leftover) is
reported with exit code 1; the repair fixes or removes each, reports what it did, and the
archive then verifies clean and serves what was repaired."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from contextlib import closing
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from pydicom.uid import generate_uid

from tests.conftest import run_server
from tests.dataset_factories import corpus_bytes, ct_series

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DICOM = "application/dicom"
AS_STORED = {"Accept": f"{DICOM}; transfer-syntax=*"}


def verify(data_dir: Path, *args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "pacs", "verify", "--data", str(data_dir),
                           "--json", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def kinds(report: dict[str, Any]) -> list[str]:
    return sorted(f["kind"] for f in report["findings"])


def blob_path(data_dir: Path, name: str) -> Path:
    return data_dir / "blobs" / name[:2] / name[2:4] / name


def rows(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(data_dir / "index.sqlite3")) as conn, conn:
        return conn.execute(sql).fetchall()


def plant_blob(data_dir: Path, data: bytes) -> str:
    """A committed blob no row points at, as a crash between commit and index leaves."""
    name = uuid.uuid4().hex
    path = blob_path(data_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return name


def test_verify_reports_and_repairs_a_damaged_archive(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    files = ct_series(4, size=16, patient="VERIFY^ME")
    with run_server(data_dir) as running:
        root = f"http://127.0.0.1:{running.port}/dicomweb"
        for data in files:
            assert requests.post(f"{root}/studies", data=data,
                                 headers={"Content-Type": DICOM}).status_code == 200
    code, report = verify(data_dir)
    assert (code, report["instances"], report["findings"]) == (0, 4, [])

    by_sop = {sop: blob for sop, blob in rows(
        data_dir, "SELECT sop_uid, blob_name FROM instances")}
    sops = [pydicom.dcmread(BytesIO(d)).SOPInstanceUID for d in files]
    corrupt = blob_path(data_dir, by_sop[sops[0]])
    damaged = bytearray(corrupt.read_bytes())
    damaged[-1] ^= 0x01
    corrupt.write_bytes(bytes(damaged))
    blob_path(data_dir, by_sop[sops[1]]).unlink()
    orphan_data = corpus_bytes("MR_small.dcm")
    orphan = plant_blob(data_dir, orphan_data)
    junk = plant_blob(data_dir, b"not an instance at all" * 10)
    rows(data_dir, "INSERT INTO studies (store_id, study_uid, attrs) VALUES "
                   f"(1, '{generate_uid()}', '{{}}')")  # a phantom study
    rows(data_dir, "UPDATE series SET n_instances = 9")  # counts gone astray
    (data_dir / "staging" / "left.part").write_bytes(b"half an upload")

    code, report = verify(data_dir, "--grace", "0")
    assert code == 1 and not report["healthy"]
    assert kinds(report) == ["astray", "corrupt", "missing", "staging", "unreferenced",
                             "unreferenced"]
    assert all(f["repair"] == "" for f in report["findings"])
    assert corrupt.read_bytes() == bytes(damaged)  # a check changes nothing
    # without --grace, fresh leftovers belong to a running server and are left alone
    assert kinds(verify(data_dir)[1]) == ["astray", "corrupt", "missing"]

    code, report = verify(data_dir, "--repair", "--grace", "0")
    assert code == 0 and report["healthy"], report
    repairs = {f["subject"]: f["repair"] for f in report["findings"]}
    assert "is in the index (stored again" in repairs[f"blob {orphan}"]
    assert repairs[f"blob {junk}"].startswith("removed: it cannot be stored")
    assert not blob_path(data_dir, junk).exists()
    assert list((data_dir / "staging").iterdir()) == []

    code, report = verify(data_dir, "--grace", "0")
    assert (code, report["findings"], report["instances"]) == (0, [], 3)
    with run_server(data_dir) as running:
        root = f"http://127.0.0.1:{running.port}/dicomweb"
        found = requests.get(f"{root}/instances").json()
        assert len(found) == 3
        ds = pydicom.dcmread(BytesIO(orphan_data))
        url = (f"{root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
               f"/instances/{ds.SOPInstanceUID}")
        assert requests.get(url, headers=AS_STORED).content == orphan_data
        studies = requests.get(f"{root}/studies").json()
        assert len(studies) == 2  # no phantom
        assert sorted(s["00201208"]["Value"][0] for s in studies) == [1, 2]
        series = requests.get(f"{root}/series").json()
        assert sorted(s["00201209"]["Value"][0] for s in series) == [1, 2]


def test_verify_refuses_a_directory_without_an_archive(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pacs", "verify", "--data", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "holds no archive" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "index.sqlite3").exists()


def test_verify_leaves_queued_removals_alone(tmp_path: Path) -> None:
    """Blobs of a deleted study wait their grace: healthy, reported as awaiting removal."""
    data_dir = tmp_path / "data"
    files = ct_series(2, size=8)
    with run_server(data_dir) as running:
        root = f"http://127.0.0.1:{running.port}/dicomweb"
        for data in files:
            requests.post(f"{root}/studies", data=data, headers={"Content-Type": DICOM})
        study = pydicom.dcmread(BytesIO(files[0])).StudyInstanceUID
        assert requests.delete(f"{root}/studies/{study}").status_code == 200
    code, report = verify(data_dir, "--grace", "0", "--repair")
    assert (code, report["findings"], report["queued_removals"]) == (0, [], 2)
    assert len([p for p in (data_dir / "blobs").rglob("*") if p.is_file()]) == 2
    shutil.rmtree(data_dir / "blobs")
    os.makedirs(data_dir / "blobs")
    assert verify(data_dir, "--grace", "0")[0] == 0  # a queued blob already gone is fine
