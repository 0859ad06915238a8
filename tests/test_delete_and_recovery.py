"""Delete against a live server, and the archive's consistency across deletes, races and
restarts: every indexed instance retrieves, and every blob on disk belongs to one of them.
"""

import hashlib
import os
import threading
import time
from collections.abc import Callable
from functools import partial
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from pydicom.uid import generate_uid

from tests.blob_files import blob_files, queued_removals
from tests.conftest import LiveServer, run_server
from tests.dataset_factories import corpus_bytes, ct_series, edited

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DICOM = "application/dicom"
AS_STORED = {"Accept": f"{DICOM}; transfer-syntax=*"}
BOUNDARY = "delete-test-boundary"


def multipart(files: list[bytes]) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: {DICOM}\r\n\r\n".encode()
    return b"".join(head + d + b"\r\n" for d in files) + f"--{BOUNDARY}--\r\n".encode()


def store(root: str, files: list[bytes], study: str | None = None) -> requests.Response:
    url = f"{root}/studies" + (f"/{study}" if study else "")
    return requests.post(url, data=multipart(files), headers={
        "Content-Type": f'multipart/related; type="{DICOM}"; boundary={BOUNDARY}',
        "Accept": "application/dicom+json"})


def uids(data: bytes) -> tuple[str, str, str]:
    ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


def instance_path(data: bytes) -> str:
    study, series, sop = uids(data)
    return f"/studies/{study}/series/{series}/instances/{sop}"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def search(root: str, path: str, **params: Any) -> list[dict[str, Any]]:
    response = requests.get(f"{root}{path}", params={"limit": 10_000, **params})
    if response.status_code == 204:
        return []
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def first(result: dict[str, Any], tag: str) -> Any:
    return result[tag]["Value"][0]


def assert_consistent(root: str, data_dir: Path) -> dict[str, bytes]:
    """Every indexed instance retrieves; the blobs on disk are exactly their bytes; the study
    and series counts agree with the instances. Returns the bytes by RetrieveURL."""
    retrieved = {}
    for result in search(root, "/instances"):
        url = first(result, "00081190")
        response = requests.get(url, headers=AS_STORED)
        assert response.status_code == 200, (url, response.text)
        retrieved[url] = response.content
    on_disk = sorted(_sha(p.read_bytes()) for p in blob_files(data_dir))
    assert on_disk == sorted(_sha(b) for b in retrieved.values())
    for study in search(root, "/studies"):
        uid = first(study, "0020000D")
        series = search(root, f"/studies/{uid}/series")
        assert first(study, "00201206") == len(series) > 0
        assert first(study, "00201208") == len(search(root, f"/studies/{uid}/instances"))
        for item in series:
            in_series = search(root, f"/studies/{uid}/series/{first(item, '0020000E')}"
                                     "/instances")
            assert first(item, "00201209") == len(in_series) > 0
    return retrieved


def delete(url: str) -> requests.Response:
    return requests.delete(url)


def assert_deleted(response: requests.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {}


def assert_not_found(response: requests.Response) -> None:
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (404, "NOT_FOUND")


def _two_series_study(patient: str = "DELETE^ME") -> list[bytes]:
    study = generate_uid()
    ct = ct_series(3, size=8, patient=patient, study_uid=study)
    mr = []
    for data in ct_series(2, size=8, patient=patient, study_uid=study):
        ds = pydicom.dcmread(BytesIO(data))
        ds.Modality = "MR"
        ds.SeriesNumber = 5
        out = BytesIO()
        ds.save_as(out)
        mr.append(out.getvalue())
    return ct + mr


# -- Delete semantics --------------------------------------------------------------------------


def test_delete_instance(live_server: LiveServer) -> None:
    root, files = live_server.dicomweb, _two_series_study()
    keep = corpus_bytes("CT_small.dcm")
    assert store(root, [*files, keep]).status_code == 200
    study, series, _sop = uids(files[0])
    assert_deleted(delete(root + instance_path(files[0])))
    assert_not_found(requests.get(root + instance_path(files[0]), headers=AS_STORED))
    assert_not_found(requests.get(root + instance_path(files[0]) + "/metadata"))
    assert_not_found(requests.get(root + instance_path(files[0]) + "/frames/1"))
    assert len(search(root, f"/studies/{study}/series/{series}/instances")) == 2
    [found] = search(root, "/studies", StudyInstanceUID=study)
    assert (first(found, "00201206"), first(found, "00201208")) == (2, 4)
    assert len(blob_files(live_server.data_dir)) == 5
    assert_not_found(delete(root + instance_path(files[0])))
    for data in [*files[1:], keep]:
        assert requests.get(root + instance_path(data), headers=AS_STORED).content == data
    assert_consistent(root, live_server.data_dir)


def test_delete_series(live_server: LiveServer) -> None:
    root, files = live_server.dicomweb, _two_series_study()
    assert store(root, files).status_code == 200
    study, ct_series_uid, _sop = uids(files[0])
    assert_deleted(delete(f"{root}/studies/{study}/series/{ct_series_uid}"))
    assert_not_found(requests.get(f"{root}/studies/{study}/series/{ct_series_uid}",
                                  headers={"Accept": "*/*"}))
    for data in files[:3]:
        assert_not_found(requests.get(root + instance_path(data), headers=AS_STORED))
    [found] = search(root, "/studies", StudyInstanceUID=study)
    assert (first(found, "00201206"), first(found, "00201208")) == (1, 2)
    assert found["00080061"]["Value"] == ["MR"]
    assert len(blob_files(live_server.data_dir)) == 2
    assert_not_found(delete(f"{root}/studies/{study}/series/{ct_series_uid}"))
    assert_consistent(root, live_server.data_dir)


def test_delete_study(live_server: LiveServer) -> None:
    root, files = live_server.dicomweb, _two_series_study()
    other = ct_series(2, size=8, patient="KEEP^ME")
    assert store(root, [*files, *other]).status_code == 200
    study = uids(files[0])[0]
    assert_deleted(delete(f"{root}/studies/{study}"))
    assert_not_found(requests.get(f"{root}/studies/{study}", headers={"Accept": "*/*"}))
    assert_not_found(requests.get(f"{root}/studies/{study}/metadata"))
    assert requests.get(f"{root}/studies", params={"StudyInstanceUID": study}).status_code == 204
    assert requests.get(f"{root}/studies/{study}/series").status_code == 204
    assert_not_found(delete(f"{root}/studies/{study}"))
    assert sorted(_sha(p.read_bytes()) for p in blob_files(live_server.data_dir)) == sorted(
        _sha(d) for d in other)
    assert_consistent(root, live_server.data_dir)
    assert_deleted(delete(f"{root}/studies/{uids(other[0])[0]}"))
    assert blob_files(live_server.data_dir) == []
    assert requests.get(f"{root}/studies").status_code == 204


def test_a_retrieve_racing_a_delete_is_never_cut_short(live_server: LiveServer) -> None:
    """A study retrieve that started before the delete gets every instance it found, whole,
    after a 200; the blobs then wait their grace, queued for removal."""
    root = live_server.dicomweb
    files = ct_series(40, size=256, patient="READ^WHILE^DELETED")
    assert store(root, files).status_code == 200
    study = uids(files[0])[0]
    with requests.get(f"{root}/studies/{study}", stream=True, headers={
            "Accept": f'multipart/related; type="{DICOM}"; transfer-syntax=*'}) as response:
        assert response.status_code == 200
        body = response.raw.read(64 * 1024)  # the server is now blocked on a full socket
        assert_deleted(delete(f"{root}/studies/{study}"))
        body += response.raw.read()
    boundary = response.headers["content-type"].split("boundary=")[1].strip('"')
    parts = [p.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n")
             for p in body.split(f"--{boundary}".encode())[1:-1]]
    assert sorted(parts) == sorted(files)
    assert len(queued_removals(live_server.data_dir)) == len(files)
    assert blob_files(live_server.data_dir) == []


def test_delete_through_the_wrong_parent_is_404_and_deletes_nothing(
        live_server: LiveServer) -> None:
    root, files = live_server.dicomweb, _two_series_study()
    assert store(root, files).status_code == 200
    study, ct_uid, sop = uids(files[0])
    mr_uid = uids(files[-1])[1]
    for url in (f"{root}/studies/{study}/series/{mr_uid}/instances/{sop}",
                f"{root}/studies/{generate_uid()}/series/{ct_uid}",
                f"{root}/studies/{generate_uid()}/series/{ct_uid}/instances/{sop}"):
        assert_not_found(delete(url))
    assert len(assert_consistent(root, live_server.data_dir)) == len(files)


@pytest.mark.parametrize("suffix", ["/studies/1.2.abc", "/studies/1.2.3/series/x",
                                    "/studies/1.2.3/series/1.2.3/instances/" + "9" * 65])
def test_delete_with_an_invalid_uid_is_400(live_server: LiveServer, suffix: str) -> None:
    response = delete(live_server.dicomweb + suffix)
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_delete_in_an_unknown_store_or_version_is_404(live_server: LiveServer) -> None:
    data = ct_series(1, size=8)[0]
    assert store(live_server.dicomweb, [data]).status_code == 200
    study = uids(data)[0]
    for root in (live_server.google("projects/x/locations/y/datasets/z/dicomStores/w"),
                 live_server.google(version="v2")):
        assert_not_found(delete(f"{root}/studies/{study}"))
    assert requests.get(live_server.dicomweb + instance_path(data),
                        headers=AS_STORED).content == data


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_delete_through_the_google_path(live_server: LiveServer, version: str) -> None:
    files = ct_series(2, size=8)
    assert store(live_server.dicomweb, files).status_code == 200
    google = live_server.google(version=version)
    assert_deleted(delete(google + instance_path(files[0])))
    assert_not_found(requests.get(live_server.dicomweb + instance_path(files[0]),
                                  headers=AS_STORED))
    assert_deleted(delete(f"{google}/studies/{uids(files[1])[0]}"))
    assert blob_files(live_server.data_dir) == []


def test_store_again_after_delete(live_server: LiveServer) -> None:
    """A deleted SOP Instance UID is free again, even for other content."""
    root = live_server.dicomweb
    original = corpus_bytes("MR_small.dcm")
    other = corpus_bytes("MR_small_implicit.dcm")  # same UIDs, other bytes
    assert store(root, [original]).status_code == 200
    assert store(root, [other]).status_code == 409
    assert_deleted(delete(root + instance_path(original)))
    assert store(root, [other]).status_code == 200
    assert requests.get(root + instance_path(other), headers=AS_STORED).content == other
    assert_consistent(root, live_server.data_dir)


# -- Recovery at startup -----------------------------------------------------------------------


def _age(path: Path, seconds: float) -> Path:
    """Set `path`'s modification time `seconds` in the past."""
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_old_leftovers_are_removed_at_startup_and_fresh_ones_kept(tmp_path: Path) -> None:
    """Orphans and staging leftovers past their grace periods go at the first sweep after
    startup (here at once); ones younger than that may belong to a store another process is
    making, and stay."""
    data_dir = tmp_path / "data"
    files = [corpus_bytes("CT_small.dcm"), *ct_series(3, size=8)]
    with run_server(data_dir) as running:
        root = f"http://127.0.0.1:{running.port}/dicomweb"
        assert store(root, files).status_code == 200
        before = assert_consistent(root, data_dir)
    kept = blob_files(data_dir)
    for blob in kept:  # stored blobs are old too, and stay because the index points at them
        _age(blob, 2 * 3600)
    blobs = data_dir / "blobs"
    # even a copy of a stored instance is an orphan
    orphans = [_age(_write(blobs / "ab" / "cd" / ("abcd" + "0" * 28), files[0]), 2 * 3600),
               _age(_write(blobs / "ff" / "ff" / ("f" * 32), b"half a blob"), 2 * 3600)]
    young_orphan = _write(blobs / "ee" / "ee" / ("e" * 32), b"about to be indexed")
    staging = data_dir / "staging"
    leftovers = [_age(_write(staging / f"{'1' * 32}.part", b"interrupted"), 7 * 3600),
                 _age(_write(staging / "junk", b"interrupted upload"), 7 * 3600)]
    receiving = _write(staging / f"{'2' * 32}.part", b"still arriving")
    with run_server(data_dir, cleanup_delay_seconds=0) as running:
        root = f"http://127.0.0.1:{running.port}/dicomweb"
        deadline = time.monotonic() + 30
        while any(p.exists() for p in orphans + leftovers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(p.exists() for p in orphans + leftovers)
        assert young_orphan.exists() and receiving.exists()
        assert sorted(blob_files(data_dir)) == sorted([*kept, young_orphan])
        young_orphan.unlink()
        assert assert_consistent(root, data_dir) == {
            url.replace(url.split("/dicomweb")[0], f"http://127.0.0.1:{running.port}"): data
            for url, data in before.items()}


def test_a_stray_file_among_the_blobs_does_not_stop_startup(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data = ct_series(1, size=8)[0]
    with run_server(data_dir) as running:
        assert store(f"http://127.0.0.1:{running.port}/dicomweb", [data]).status_code == 200
    stray = blob_files(data_dir)[0].parent / ".DS_Store"
    stray.write_bytes(b"\0")
    with run_server(data_dir, cleanup_delay_seconds=0, orphan_grace_seconds=-1) as running:
        root = f"http://127.0.0.1:{running.port}/dicomweb"
        assert requests.get(root + instance_path(data), headers=AS_STORED).content == data
        time.sleep(0.5)  # the sweep, at once here, passes the stray file by
        assert stray.exists()
        assert requests.get(root + instance_path(data), headers=AS_STORED).content == data


def test_restart_keeps_everything(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    files = [corpus_bytes(n) for n in ("CT_small.dcm", "rtdose.dcm", "waveform_ecg.dcm")]
    with run_server(data_dir) as running:
        assert store(f"http://127.0.0.1:{running.port}/dicomweb", files).status_code == 200
    blobs = blob_files(data_dir)
    for _ in range(2):
        with run_server(data_dir) as running:
            root = f"http://127.0.0.1:{running.port}/dicomweb"
            for data in files:
                got = requests.get(root + instance_path(data), headers=AS_STORED)
                assert got.content == data
            assert_consistent(root, data_dir)
        assert blob_files(data_dir) == blobs


# -- Races -------------------------------------------------------------------------------------


def _delete_while_storing(store_action: Callable[[], requests.Response],
                          target: str) -> tuple[requests.Response, list[int]]:
    """Start `store_action` and, released together with it, DELETE `target` again and again
    until the store has answered; the store's response and every delete's status."""
    barrier, done = threading.Barrier(2), threading.Event()
    stored: list[requests.Response] = []
    statuses: list[int] = []
    errors: list[BaseException] = []

    def storing() -> None:
        try:
            barrier.wait()
            stored.append(store_action())
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)
        finally:
            done.set()

    def deleting() -> None:
        try:
            barrier.wait()
            while not done.is_set() and len(statuses) < 1000:
                statuses.append(delete(target).status_code)
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)

    threads = [threading.Thread(target=storing), threading.Thread(target=deleting)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return stored[0], statuses


def test_delete_racing_a_store_of_the_same_study_leaves_a_consistent_archive(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    study = generate_uid()
    bystander = ct_series(2, size=8, patient="BYSTANDER")
    with run_server(data_dir) as running:
        root = f"http://127.0.0.1:{running.port}/dicomweb"
        assert store(root, bystander).status_code == 200
        for round_number in range(8):
            existing = ct_series(6, size=8, patient="RACE^ROUND", study_uid=study)
            assert store(root, existing, study).status_code == 200
            series = uids(existing[0])[1]
            # New instances, byte-identical re-sends of stored ones, and new instances of the
            # series being deleted, against deletes of the study, the series or an instance.
            incoming = [*ct_series(20, size=8, patient="RACE^NEW", study_uid=study),
                        *existing[:3],
                        *(edited(d, SOPInstanceUID=generate_uid()) for d in existing[3:])]
            target = [f"{root}/studies/{study}", f"{root}/studies/{study}/series/{series}",
                      root + instance_path(existing[0])][round_number % 3]
            stored, statuses = _delete_while_storing(partial(store, root, incoming, study),
                                                     target)
            assert stored.status_code == 200, stored.text
            assert set(statuses) <= {200, 404} and statuses
            assert_consistent(root, data_dir)
        final = assert_consistent(root, data_dir)
        assert all(requests.get(root + instance_path(d), headers=AS_STORED).content == d
                   for d in bystander)
    blobs = blob_files(data_dir)
    assert list((data_dir / "staging").iterdir()) == []
    with run_server(data_dir) as running:
        root = f"http://127.0.0.1:{running.port}/dicomweb"
        assert blob_files(data_dir) == blobs  # nothing was an orphan
        assert len(assert_consistent(root, data_dir)) == len(final)


def test_parallel_stores_of_one_instance(live_server: LiveServer) -> None:
    """Identical bytes sent twice at once: both succeed, one copy kept. Different bytes under
    one SOP Instance UID at once: exactly one wins, the other is a 0x0110 failure."""
    root = live_server.dicomweb
    same = ct_series(1, size=8)[0]
    first_response, second_response = _together(partial(store, root, [same]),
                                                partial(store, root, [same]))
    assert first_response.status_code == second_response.status_code == 200
    sop = generate_uid()
    rivals = [edited(same, SOPInstanceUID=sop),
              edited(same, SOPInstanceUID=sop, PatientID="RIVAL")]
    answers = _together(*(partial(store, root, [r]) for r in rivals))
    assert sorted(a.status_code for a in answers) == [200, 409]
    winner = rivals[[a.status_code for a in answers].index(200)]
    loser = answers[[a.status_code for a in answers].index(409)].json()
    assert loser["00081198"]["Value"][0]["00081197"]["Value"] == [0x0110]
    assert requests.get(root + instance_path(winner), headers=AS_STORED).content == winner
    assert len(assert_consistent(root, live_server.data_dir)) == 2


def _together(*actions: Callable[[], requests.Response]) -> list[requests.Response]:
    """Run `actions` in threads released at once; their responses in order."""
    barrier = threading.Barrier(len(actions))
    results: dict[int, requests.Response] = {}

    def run(i: int, action: Callable[[], requests.Response]) -> None:
        barrier.wait()
        results[i] = action()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == len(actions)
    return [results[i] for i in range(len(actions))]
