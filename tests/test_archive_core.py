"""The archive core: native 4:2:2 frames sized once for ingest and pixels, 405 with `Allow`,
the service layer called without HTTP (as `pacs import` and a DIMSE gateway will), cleanup
that is safe beside writers, and the bulk data migration of rows stored before it."""

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from io import BytesIO
from pathlib import Path

import numpy as np
import orjson
import pydicom
import pytest
import requests
from pydicom.uid import SecondaryCaptureImageStorage

from pacs.dicom.bulk_data import GOOGLE_BULK_DATA
from pacs.dicom.ingest import read_instance
from pacs.dicom.pydicom_setup import configure_pydicom
from pacs.service.archive import Archive, open_archive
from pacs.service.cleanup import sweep, sweep_periodically
from pacs.service.delete import delete
from pacs.service.errors import InvalidArgument, NotFound
from pacs.service.failures import CANNOT_UNDERSTAND
from pacs.service.retrieve import locate
from pacs.service.store_instances import store_file
from pacs.service.targets import Target
from pacs.settings import Settings
from storage.filesystem_blobs import FilesystemBlobStore
from tests.conftest import LiveServer, run_server
from tests.dataset_factories import _image_header, _part10, corpus_bytes, corpus_path
from tests.multipart_parts import parse_multipart

OCTET_AS_STORED = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


def ybr_422_frames(frames: int = 3, rows: int = 4, columns: int = 6) -> tuple[bytes, bytes]:
    """A native YBR_FULL_422 multi-frame image (PS3.3 C.7.6.3.1.2: Y1 Y2 Cb Cr per pixel
    pair, so two samples per pixel) and its pixel data."""
    ds = _image_header(SecondaryCaptureImageStorage, "OT", None)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = frames
    pixels = np.arange(frames * rows * columns * 2, dtype=np.uint16).astype(np.uint8).tobytes()
    ds.PixelData = pixels
    return _part10(ds), pixels


def test_ingest_sizes_a_422_frame_with_two_samples_per_pixel() -> None:
    data, pixels = ybr_422_frames()
    record = read_instance(BytesIO(data), GOOGLE_BULK_DATA)
    frame = 4 * 6 * 2
    assert [[span.length for span in f] for f in record.frames] == [[frame]] * 3
    assert len(pixels) == 3 * frame


def test_every_422_frame_comes_back_exactly(live_server: LiveServer) -> None:
    data, pixels = ybr_422_frames()
    stored = requests.post(f"{live_server.dicomweb}/studies", data=data,
                           headers={"Content-Type": "application/dicom"})
    assert stored.status_code == 200
    instance = stored.text.split("/instances/")[1].split("<")[0]
    [found] = requests.get(f"{live_server.dicomweb}/instances").json()
    study, series = found["0020000D"]["Value"][0], found["0020000E"]["Value"][0]
    url = (f"{live_server.dicomweb}/studies/{study}/series/{series}/instances/{instance}"
           "/frames/3,1,2")
    got = requests.get(url, headers={"Accept": OCTET_AS_STORED})
    assert got.status_code == 200
    frame = len(pixels) // 3
    assert [body for _, body in parse_multipart(got)] == [
        pixels[2 * frame:], pixels[:frame], pixels[frame:2 * frame]]


def test_a_405_names_the_allowed_methods(live_server: LiveServer) -> None:
    """RFC 9110 15.5.6: a 405 response carries Allow (it used to be dropped)."""
    for url, allowed in ((f"{live_server.dicomweb}/series", {"GET", "HEAD", "OPTIONS"}),
                         (f"{live_server.dicomweb}/studies/1.2.3", {"GET", "HEAD", "POST",
                                                                      "DELETE", "OPTIONS"})):
        response = requests.put(url, data=b"")
        assert response.status_code == 405
        assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed
        assert response.json()["error"]["code"] == 405


@pytest.fixture
async def archive(tmp_path: Path) -> AsyncIterator[Archive]:
    configure_pydicom()
    opened = await open_archive(Settings(data_dir=tmp_path / "data", orphan_grace_seconds=-1,
                                         staging_grace_seconds=-1))
    try:
        yield opened
    finally:
        await opened.close()


async def test_the_service_stores_a_file_without_http(archive: Archive, tmp_path: Path) -> None:
    store = await archive.stores.get(archive.settings.default_store)
    outcome = await store_file(archive, store, corpus_path("CT_small.dcm"))
    assert outcome.stored and outcome.sop_uid
    [found] = await locate(archive, store, Target.of(outcome.study_uid, outcome.series_uid,
                                                     outcome.sop_uid))
    data = corpus_bytes("CT_small.dcm")
    assert archive.blobs.read(found.blob_name, 0, found.blob_size) == data
    assert (await store_file(archive, store, corpus_path("CT_small.dcm"))).stored  # duplicate
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all" * 20)
    failed = await store_file(archive, store, junk)
    assert failed.reason is CANNOT_UNDERSTAND and not failed.stored
    assert list((archive.settings.data_dir / "staging").iterdir()) == []


async def test_an_instance_again_in_another_file_meta_is_a_duplicate_in_full_only(
        archive: Archive, tmp_path: Path) -> None:
    """The data set identifies an instance (PS3.10 7.1): the same one written by another
    toolkit, from another AE title, is a duplicate and what was stored stays; other content is
    a conflict. A google profile store, as Google, takes identical files only."""
    original = corpus_bytes("CT_small.dcm")
    ds = pydicom.dcmread(BytesIO(original))
    ds.file_meta.ImplementationVersionName = "OTHER_TOOLKIT"
    ds.file_meta.SourceApplicationEntityTitle = "CT_SCANNER_2"
    rewritten = tmp_path / "rewritten.dcm"
    ds.save_as(rewritten, enforce_file_format=True)
    assert rewritten.read_bytes() != original
    ds.PatientName = "CHANGED^CONTENT"
    changed = tmp_path / "changed.dcm"
    ds.save_as(changed, enforce_file_format=True)
    full = await archive.stores.get(archive.settings.default_store)
    google = await archive.stores.ensure("projects/p/locations/l/datasets/d/dicomStores/g",
                                         "google")
    for store, again in ((full, True), (google, False)):
        assert (await store_file(archive, store, corpus_path("CT_small.dcm"))).stored
        outcome = await store_file(archive, store, rewritten)
        assert (outcome.stored, outcome.duplicate) == (again, again), store.profile.name
        assert not (await store_file(archive, store, changed)).stored
        [found] = await locate(archive, store, Target.of(outcome.study_uid, outcome.series_uid,
                                                         outcome.sop_uid))
        assert archive.blobs.read(found.blob_name, 0, found.blob_size) == original


async def test_the_service_raises_domain_errors(archive: Archive) -> None:
    store = await archive.stores.get(archive.settings.default_store)
    with pytest.raises(NotFound):
        await archive.stores.get("projects/p/locations/l/datasets/d/dicomStores/none")
    with pytest.raises(NotFound):
        await locate(archive, store, Target.of("1.2.3"))
    with pytest.raises(InvalidArgument):
        Target.of("1.2.3", "not-a-uid")


async def test_cleanup_spares_what_a_store_is_receiving(archive: Archive) -> None:
    """With no grace at all, a sweep still keeps the blob this process is staging and every
    blob the index points at; it removes an abandoned staged blob and an orphan."""
    store = await archive.stores.get(archive.settings.default_store)
    outcome = await store_file(archive, store, corpus_path("MR_small.dcm"))
    receiving = archive.blobs.stage()
    receiving.write(b"half an instance")
    orphan_stage = archive.blobs.stage()
    orphan_stage.write(b"an instance never indexed")
    orphan = archive.blobs.commit(orphan_stage)
    # a staged file left by another process (one that died) is not this process's to keep
    other = FilesystemBlobStore(archive.settings.data_dir).stage()
    other.write(b"left by a crash")
    other.close()
    report = await sweep(archive)
    assert (report.staged, report.unreferenced) == (1, 1)
    with pytest.raises(FileNotFoundError):
        archive.blobs.read(orphan, 0, 1)
    receiving.write(b", the rest")
    receiving.close()
    with receiving.open() as fp:
        assert fp.read() == b"half an instance, the rest"
    receiving.discard()
    [kept] = await locate(archive, store, Target.of(outcome.study_uid))
    assert archive.blobs.read(kept.blob_name, 0, 4)


async def test_deleted_blobs_outlive_their_rows_by_the_grace(tmp_path: Path) -> None:
    """A delete queues its blobs; a sweep removes them only once the grace has passed, and
    a blob already gone (removed by hand) does not stop the queue."""
    configure_pydicom()
    settings = Settings(data_dir=tmp_path / "data", removal_grace_seconds=3600)
    archive = await open_archive(settings)
    try:
        store = await archive.stores.get(settings.default_store)
        kept = await store_file(archive, store, corpus_path("MR_small.dcm"))
        gone = [await store_file(archive, store, corpus_path(name))
                for name in ("CT_small.dcm", "rtplan.dcm")]
        names = [found.blob_name for outcome in gone for found in
                 await locate(archive, store, Target.of(outcome.study_uid))]
        for outcome in gone:
            await delete(archive, store, Target.of(outcome.study_uid))
        assert (await sweep(archive)).deleted == 0
        assert all(archive.blobs.read(name, 0, 4) for name in names)  # still readable
        archive.blobs.delete(names[0])
    finally:
        await archive.close()
    archive = await open_archive(replace(settings, removal_grace_seconds=0))
    try:
        assert (await sweep(archive)).deleted == 2
        for name in names:
            with pytest.raises(FileNotFoundError):
                archive.blobs.read(name, 0, 1)
        assert await archive.index.due_removals(0, 10) == []
        [found] = await locate(archive, store, Target.of(kept.study_uid))
        assert archive.blobs.read(found.blob_name, 0, 4)
    finally:
        await archive.close()


def test_rows_stored_before_bulk_paths_are_migrated(tmp_path: Path) -> None:
    """Migration 0002 rewrites BulkDataURIs that ingest once stored as DICOMweb paths; the
    answers then build the URL of whichever host and route the client used."""
    data_dir = tmp_path / "data"
    data = corpus_bytes("CT_small.dcm")
    with run_server(data_dir) as running:
        root = f"http://127.0.0.1:{running.port}/dicomweb"
        assert requests.post(f"{root}/studies", data=data,
                             headers={"Content-Type": "application/dicom"}).status_code == 200
        expected = requests.get(f"{root}/instances?includefield=all").json()
    with sqlite3.connect(data_dir / "index.sqlite3") as db:
        (study, series, sop, metadata), = db.execute(
            "SELECT st.study_uid, se.series_uid, i.sop_uid, i.metadata FROM instances i "
            "JOIN series se ON se.pk = i.series_pk JOIN studies st ON st.pk = i.study_pk")
        old = metadata.replace('"BulkDataURI":"', f'"BulkDataURI":"studies/{study}/series/'
                               f'{series}/instances/{sop}/bulkdata/')
        db.execute("UPDATE instances SET metadata = ?", (old,))
        db.execute("DELETE FROM migrations WHERE name = '0002_bulk_data_uris_as_paths'")
    with run_server(data_dir) as running:
        root = f"http://127.0.0.1:{running.port}/dicomweb"
        got = requests.get(f"{root}/instances?includefield=all").json()
        metadata_answer = requests.get(f"{root}/studies/{study}/metadata").json()
    port = expected[0]["7FE00010"]["BulkDataURI"].split("/")[2]
    moved = orjson.loads(orjson.dumps(got).replace(f"127.0.0.1:{running.port}".encode(),
                                                   port.encode()))
    assert moved == expected
    assert metadata_answer[0]["7FE00010"]["BulkDataURI"] == (
        f"{root}/studies/{study}/series/{series}/instances/{sop}/bulkdata/7FE00010")


def test_group_lengths_stored_before_0003_are_dropped(tmp_path: Path) -> None:
    """Migration 0003 removes group lengths that earlier ingests kept, nested ones too."""
    data_dir = tmp_path / "data"
    data = corpus_bytes("CT_small.dcm")
    with run_server(data_dir) as running:
        root = f"http://127.0.0.1:{running.port}/dicomweb"
        assert requests.post(f"{root}/studies", data=data,
                             headers={"Content-Type": "application/dicom"}).status_code == 200
    with sqlite3.connect(data_dir / "index.sqlite3") as db:
        (study, metadata), = db.execute(
            "SELECT st.study_uid, i.metadata FROM instances i JOIN studies st "
            "ON st.pk = i.study_pk")
        old = orjson.loads(metadata)
        old["00080000"] = {"vr": "UL", "Value": [200]}
        old["00081032"] = {"vr": "SQ", "Value": [{"00080000": {"vr": "UL", "Value": [8]}}]}
        db.execute("UPDATE instances SET metadata = ?", (orjson.dumps(old).decode(),))
        db.execute("DELETE FROM migrations WHERE name = '0003_no_group_lengths'")
    with run_server(data_dir) as running:
        root = f"http://127.0.0.1:{running.port}/dicomweb"
        [got] = requests.get(f"{root}/studies/{study}/metadata").json()
    assert "00080000" not in got and got["00081032"] == {"vr": "SQ", "Value": [{}]}
    assert got["00080018"] == old["00080018"]


async def test_one_process_sweeps_at_a_time(tmp_path: Path) -> None:
    """Processes sharing a data directory take turns: while one holds the cleanup lock, the
    periodic sweep of another skips its round and removes nothing."""
    settings = Settings(data_dir=tmp_path / "data", orphan_grace_seconds=-1,
                        staging_grace_seconds=-1, cleanup_delay_seconds=0,
                        cleanup_interval_seconds=3600)
    archive = await open_archive(settings)
    try:
        left = archive.blobs.stage()
        left.close()
        left.released()  # abandoned, as by a process that died
        holder = subprocess.Popen(
            [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
             "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
             str(settings.data_dir / "cleanup.lock")], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            task = asyncio.create_task(sweep_periodically(archive))
            await asyncio.sleep(0.5)
            assert left.path.exists()  # skipped: another process holds the lock
        finally:
            holder.kill()
            holder.wait()
        task.cancel()
        task = asyncio.create_task(sweep_periodically(archive))
        for _ in range(100):
            if not left.path.exists():
                break
            await asyncio.sleep(0.05)
        assert not left.path.exists()  # the lock is free: this process swept
        task.cancel()
    finally:
        await archive.close()


async def test_a_store_cancelled_while_its_row_commits_keeps_its_blob(tmp_path: Path) -> None:
    """A store whose task is cancelled (a worker shutting down) while its row waits for the
    index must not remove the blob: the row may still commit, and a row without its blob is
    data lost, where a blob without a row is only an orphan the sweep removes."""
    configure_pydicom()
    settings = Settings(data_dir=tmp_path / "data")
    archive = await open_archive(settings)
    try:
        store = await archive.stores.get(settings.default_store)
        holder = subprocess.Popen(  # another process's turn at writing the index
            [sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1], 'a'); "
             "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
             str(settings.placement.sqlite_path) + ".writer"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            task = asyncio.create_task(store_file(archive, store, corpus_path("CT_small.dcm")))
            await asyncio.sleep(1.0)  # staged, parsed, committed; its row waits for the turn
            task.cancel()
            await asyncio.sleep(0.2)
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.5)  # the group commit, released, goes through
        found = await archive.index.instances_after(0, 10)
        assert len(found) == 1
        assert archive.blobs.size(found[0].blob_name) == found[0].blob_size
    finally:
        await archive.close()
