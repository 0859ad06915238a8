"""The archive on the storage a deployment outgrows one machine with (issue 15): `pacs serve
--blobs s3://…` keeps every blob in a real S3 bucket (SeaweedFS), and real clients store,
search and retrieve through it as through the data directory."""

import asyncio
import io
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from tests.dataset_factories import ct_series
from tests.served_process import served
from tests.storage import postgres_server, s3_server


@pytest.mark.parametrize("index", ["sqlite", "postgresql"])
def test_a_server_on_an_s3_bucket_stores_searches_and_retrieves(tmp_path: Path,
                                                                 index: str) -> None:
    """Two workers on a bucket, with the embedded index or PostgreSQL's."""
    bucket = s3_server.shared()
    prefix = uuid.uuid4().hex[:12]
    data = tmp_path / "data"
    sent = ct_series(5, 64, patient="Bucket^Betty")
    indexed = ["--index", postgres_server.index_dsn(tmp_path)] if index == "postgresql" else []
    with served("--data", str(data), "--blobs", f"s3://{s3_server.BUCKET}/{prefix}",
                *indexed, "--workers", "2", env=bucket.env) as server:
        client = DICOMwebClient(f"{server.base}/dicomweb")
        client.store_instances([pydicom.dcmread(io.BytesIO(b)) for b in sent])
        [study] = client.search_for_studies(search_filters={"PatientName": "bucket*"})
        assert study["00201208"]["Value"] == [5]
        first = pydicom.dcmread(io.BytesIO(sent[0]))
        url = (f"{server.base}/dicomweb/studies/{first.StudyInstanceUID}/series/"
               f"{first.SeriesInstanceUID}/instances/{first.SOPInstanceUID}")
        copy = requests.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"})
        assert copy.status_code == 200 and copy.content == sent[0]  # byte for byte
        frame = client.retrieve_instance_frames(first.StudyInstanceUID,
                                                first.SeriesInstanceUID,
                                                first.SOPInstanceUID, [1])[0]
        assert frame == first.PixelData
        assert requests.get(f"{url}/rendered", headers={"Accept": "image/png"}).status_code \
            == 200
        ready = requests.get(f"{server.base}/readyz")
        assert ready.status_code == 200
    in_bucket = set(bucket.blob_store(prefix, tmp_path / "spool").names(older_than=-1))
    assert len(in_bucket) == 5
    on_disk = [p for p in (data / "blobs").rglob("*") if p.is_file()] \
        if (data / "blobs").exists() else []
    assert on_disk == []  # every blob went to the bucket
    assert f'blobs = "s3://{s3_server.BUCKET}/{prefix}"' in server.output
    if index == "postgresql":
        assert not (data / "index.sqlite3").exists()  # the index is PostgreSQL's alone


def test_a_database_out_of_reach_is_503_not_500(tmp_path: Path) -> None:
    """A PostgreSQL index that stops answering: /readyz says so, and a search answers 503
    UNAVAILABLE (the client may try again), never 500."""
    cluster = postgres_server.start_server()
    try:
        with served("--data", str(tmp_path / "data"), "--index",
                    postgres_server.index_dsn(tmp_path, cluster), "--workers", "1",
                    "--readiness-seconds", "0.2", probe="/livez") as server:
            root = f"{server.base}/dicomweb"
            assert requests.get(f"{root}/studies").status_code == 204
            cluster.stop()
            searched = requests.get(f"{root}/studies")
            assert searched.status_code == 503, searched.text
            assert searched.json()["error"]["status"] == "UNAVAILABLE"
            deadline = time.monotonic() + 10
            while requests.get(f"{server.base}/readyz").status_code != 503:
                assert time.monotonic() < deadline, "readiness never saw the index go"
                time.sleep(0.1)
            assert "index" in requests.get(f"{server.base}/readyz").json()["error"]["message"]
    finally:
        cluster.stop()


def test_a_bucket_out_of_reach_makes_the_server_not_ready(tmp_path: Path) -> None:
    unreachable = {**s3_server.shared().env, "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}
    with served("--data", str(tmp_path / "data"), "--blobs", "s3://pacs/x", "--workers", "1",
                env=unreachable, probe="/livez") as server:
        down = requests.get(f"{server.base}/readyz")
        assert down.status_code == 503
        assert "blob store" in down.json()["error"]["message"]


def test_the_file_commands_work_on_a_bucket(tmp_path: Path) -> None:
    """pacs import, verify, export and stores take --blobs as pacs serve does."""
    bucket = s3_server.shared()
    where = ["--data", str(tmp_path / "data"), "--blobs",
             f"s3://{s3_server.BUCKET}/{uuid.uuid4().hex[:12]}"]
    source = tmp_path / "in"
    source.mkdir()
    sent = ct_series(3, 16, patient="Bucket^Cli")
    for number, data in enumerate(sent):
        (source / f"{number}.dcm").write_bytes(data)

    def pacs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pacs", *args, *where],
                              capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, **bucket.env})
    imported = pacs("import", str(source), "--quiet")
    assert imported.returncode == 0, imported.stderr
    assert "3 stored" in imported.stdout
    checked = pacs("verify", "--grace", "0")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert pacs("export", "--all", str(tmp_path / "out")).returncode == 0
    exported = sorted(p.read_bytes() for p in (tmp_path / "out").rglob("*.dcm"))
    assert exported == sorted(sent)
    assert "\t3 instances\t" in pacs("stores", "list").stdout


def test_pacs_copy_moves_an_embedded_archive_into_a_bucket(tmp_path: Path) -> None:
    """Stores with their profiles and labels, IAM policies and every instance, byte for byte;
    run again it copies nothing; a damaged source blob is named and not copied."""
    bucket = s3_server.shared()
    source, store = tmp_path / "source", "projects/p/locations/l/datasets/d/dicomStores/g"
    target = ["--data", str(tmp_path / "target"), "--blobs",
              f"s3://{s3_server.BUCKET}/{uuid.uuid4().hex[:12]}"]

    def pacs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pacs", *args], capture_output=True,
                              text=True, timeout=120, check=False,
                              env={**os.environ, **bucket.env})
    files = tmp_path / "files"
    files.mkdir()
    sent = ct_series(4, 16, patient="Copy^Carl")
    for number, data in enumerate(sent):
        (files / f"{number}.dcm").write_bytes(data)
    assert pacs("stores", "create", store, "--profile", "google", "--data",
                str(source)).returncode == 0
    assert pacs("import", str(files / "0.dcm"), str(files / "1.dcm"), "--data", str(source),
                "--quiet").returncode == 0
    assert pacs("import", str(files / "2.dcm"), str(files / "3.dcm"), "--data", str(source),
                "--store", store, "--quiet").returncode == 0
    policy = '{"version": 1, "bindings": [{"role": "roles/healthcare.dicomViewer", ' \
             '"members": ["user:ann@example.com"]}]}'
    with closing(sqlite3.connect(source / "index.sqlite3")) as conn, conn:
        conn.execute("INSERT INTO policies (resource, body) VALUES (?, ?)", (store, policy))

    copied = pacs("copy", str(source), *target, "--quiet")
    assert copied.returncode == 0, copied.stdout + copied.stderr
    assert "4 files: 4 stored, 0 already stored, 0 failed" in copied.stdout
    listed = pacs("stores", "list", *target).stdout
    assert f"{store}\tgoogle\t2 instances" in listed
    assert pacs("export", "--all", str(tmp_path / "out"), "--store", store, *target
                ).returncode == 0
    assert sorted(p.read_bytes() for p in (tmp_path / "out").rglob("*.dcm")) == \
        sorted(sent[2:])
    with closing(sqlite3.connect(tmp_path / "target" / "index.sqlite3")) as conn:
        assert conn.execute("SELECT body FROM policies WHERE resource = ?",
                            (store,)).fetchone() == (policy,)

    again = pacs("copy", str(source), *target, "--quiet")
    assert "4 files: 0 stored, 4 already stored, 0 failed" in again.stdout

    damaged = next(p for p in (source / "blobs").rglob("*") if p.is_file())
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"!")
    fresh = ["--data", str(tmp_path / "fresh"), "--blobs",
             f"s3://{s3_server.BUCKET}/{uuid.uuid4().hex[:12]}"]
    partly = pacs("copy", str(source), *fresh, "--quiet")
    assert partly.returncode == 1
    assert "3 stored, 0 already stored, 1 failed" in partly.stdout
    assert "SHA-256 differs from the one recorded at ingest" in partly.stderr


def test_a_store_deleted_through_one_replica_is_gone_from_the_others_at_once(
        tmp_path: Path) -> None:
    """Replicas cache store rows (here for a minute); PostgreSQL tells every replica when
    stores change, so the other replica forgets a deleted store at once, not a minute later."""
    index = postgres_server.index_dsn(tmp_path)
    name = "projects/p/locations/l/datasets/d/dicomStores/gone"
    common = ["--index", index, "--store", name, "--store-cache-seconds", "60",
              "--workers", "1"]
    with served("--data", str(tmp_path / "a"), *common) as first, \
            served("--data", str(tmp_path / "b"), *common) as second:
        on_second = f"{second.base}/v1/{name}/dicomWeb/studies"
        assert requests.get(on_second).status_code == 204  # the store is cached there now
        assert requests.delete(f"{first.base}/v1/{name}").status_code == 200
        deadline = time.monotonic() + 10
        while (answer := requests.get(on_second)).status_code != 404:
            assert time.monotonic() < deadline, "the other replica still serves the store"
            time.sleep(0.05)
        assert answer.json()["error"]["status"] == "NOT_FOUND"


def test_an_index_written_by_a_newer_version_is_one_line(tmp_path: Path) -> None:
    """As for a data directory: pacs refuses, before anything is opened, a PostgreSQL index
    that a later version has migrated further than it knows."""
    dsn = postgres_server.index_dsn(tmp_path)
    created = subprocess.run([sys.executable, "-m", "pacs", "stores", "list", "--data",
                              str(tmp_path / "data"), "--index", dsn], capture_output=True,
                             text=True, timeout=120, check=False)
    assert created.returncode == 0, created.stderr  # the schema exists, this version's

    async def from_the_future() -> None:
        import asyncpg

        conn = await asyncpg.connect(dsn.split("?")[0], server_settings={
            "search_path": dsn.split("search_path=")[1]})
        try:
            await conn.execute("INSERT INTO migrations VALUES ('9999_from_the_future', '')")
        finally:
            await conn.close()
    asyncio.run(from_the_future())
    for command in (["serve", "--port", "1"], ["verify"], ["stores", "list"]):
        done = subprocess.run([sys.executable, "-m", "pacs", *command, "--data",
                               str(tmp_path / "data"), "--index", dsn], capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 1, done.stderr
        assert done.stderr == ("pacs: the index was written by a newer version of pacs (it "
                               "has migrations 9999_from_the_future); run that version or a "
                               "later one\n")
