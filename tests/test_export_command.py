"""`pacs export` as an operator runs it, on an archive filled by `pacs import`: a study to a
folder, byte for byte and laid out STUDY/SERIES/SOP.dcm, an unknown study reported beside
it; a second run that keeps what is intact and rewrites what is not; every study to a zip
that pydicom reads and `pacs import` takes back unchanged; damaged blobs reported, never
written; and each argument error in one line."""

import hashlib
import re
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from contextlib import closing
from io import BytesIO
from pathlib import Path
from typing import NamedTuple

import pytest
from pydicom import dcmread

from pacs.__main__ import main
from tests.dataset_factories import MR_VARIANTS, corpus_bytes, ct_series

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SUMMARY = re.compile(r"(\d+) files: (\d+) written, (\d+) already there, (\d+) failed in ")
UNKNOWN_STUDY = "1.2.3.999"


class Stored(NamedTuple):
    """An archive filled by `pacs import`, and what went in: each instance's place in an
    export (STUDY/SERIES/SOP.dcm) and its bytes."""

    data: Path
    files: dict[str, bytes]

    def study(self, uid: str) -> dict[str, bytes]:
        return {path: data for path, data in self.files.items() if path.startswith(uid + "/")}


def pacs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pacs", *args], capture_output=True,
                          text=True, timeout=120)


def summary(done: subprocess.CompletedProcess[str] | str) -> tuple[int, ...]:
    found = SUMMARY.search(done if isinstance(done, str) else done.stdout)
    assert found, done
    return tuple(int(n) for n in found.groups())


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` (hidden ones too: a temporary file left behind shows)."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def stored_sha256(data: Path) -> dict[str, str]:
    with closing(sqlite3.connect(data / "index.sqlite3")) as conn:
        return dict(conn.execute("SELECT sop_uid, sha256 FROM instances").fetchall())


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Stored:
    """Two generated CT studies (one of two series) and two pydicom files (big endian;
    JPEG 2000), imported."""
    root = tmp_path_factory.mktemp("export")
    first = ct_series(3, size=8, patient="EXPORT^ONE")
    generated = [*first, *ct_series(2, size=8, patient="EXPORT^ONE",
                                    study_uid=dcmread(BytesIO(first[0])).StudyInstanceUID),
                 *ct_series(4, size=8, patient="EXPORT^TWO"),
                 corpus_bytes("MR_small_bigendian.dcm", MR_VARIANTS["MR_small_bigendian.dcm"]),
                 corpus_bytes("JPEG2000.dcm")]
    incoming = root / "incoming"
    incoming.mkdir()
    files = {}
    for number, data in enumerate(generated):
        (incoming / f"{number}.dcm").write_bytes(data)
        ds = dcmread(BytesIO(data), stop_before_pixels=True)
        files[f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"] = data
    done = pacs("import", "--quiet", str(incoming), "--data", str(root / "data"))
    assert done.returncode == 0, done.stdout + done.stderr
    return Stored(root / "data", files)


def test_a_study_to_a_folder_byte_for_byte_and_again(stored: Stored, tmp_path: Path) -> None:
    study = next(iter(stored.files)).split("/")[0]
    expected = stored.study(study)
    assert len({path.split("/")[1] for path in expected}) == 2  # two series
    dest = tmp_path / "out" / "export"  # created, with its parent

    first = pacs("export", "--quiet", UNKNOWN_STUDY, study, str(dest), "--data",
                 str(stored.data))
    assert first.returncode == 1  # the unknown study failed; the other was exported
    assert summary(first) == (len(expected) + 1, len(expected), 0, 1)
    assert first.stderr.splitlines() == [
        f"failed: study {UNKNOWN_STUDY}: not in store "
        "projects/local/locations/local/datasets/default/dicomStores/default"]
    assert tree(dest) == expected

    damaged, removed, *intact = sorted(expected)
    (dest / damaged).write_bytes(b"x" * len(expected[damaged]))  # same size, other bytes
    (dest / removed).unlink()
    again = pacs("export", "--quiet", study, str(dest), "--data", str(stored.data))
    assert again.returncode == 0, again.stderr
    assert summary(again) == (len(expected), 2, len(intact), 0)
    assert tree(dest) == expected


def test_every_study_to_a_zip_and_back_into_a_fresh_archive(stored: Stored,
                                                            tmp_path: Path) -> None:
    dest = tmp_path / "all.zip"
    done = pacs("export", "--quiet", "--all", str(dest), "--data", str(stored.data))
    assert done.returncode == 0, done.stderr
    assert summary(done) == (len(stored.files), len(stored.files), 0, 0)
    assert [p.name for p in tmp_path.iterdir()] == ["all.zip"]  # no temporary file left
    with zipfile.ZipFile(dest) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == sorted(stored.files)
        for name in archive.namelist():
            assert archive.read(name) == stored.files[name]
            with archive.open(name) as member:
                assert name.endswith(f"/{dcmread(member).SOPInstanceUID}.dcm")

    fresh = tmp_path / "fresh"
    back = pacs("import", "--quiet", str(dest), "--data", str(fresh))
    assert back.returncode == 0, back.stdout + back.stderr
    assert stored_sha256(fresh) == stored_sha256(stored.data) == {
        path.split("/")[2].removesuffix(".dcm"): hashlib.sha256(data).hexdigest()
        for path, data in stored.files.items()}


def test_damaged_blobs_are_reported_and_never_written(stored: Stored, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """A blob with one byte changed and a blob gone: each is one failure, and neither the
    folder nor the zip holds anything of them."""
    data = tmp_path / "data"
    shutil.copytree(stored.data, data)
    changed, gone, *intact = sorted(stored.files)
    with closing(sqlite3.connect(data / "index.sqlite3")) as conn:
        blob_names = {path: conn.execute("SELECT blob_name FROM instances WHERE sop_uid = ?",
                                         (path.split("/")[2].removesuffix(".dcm"),)
                                         ).fetchone()[0] for path in (changed, gone)}
    blobs = {path: data / "blobs" / name[:2] / name[2:4] / name
             for path, name in blob_names.items()}
    held = bytearray(blobs[changed].read_bytes())
    held[-1] ^= 1
    blobs[changed].write_bytes(bytes(held))
    blobs[gone].unlink()
    for dest in (tmp_path / "folder", tmp_path / "some.zip"):
        with pytest.raises(SystemExit) as exited:
            main(["export", "--quiet", "--all", str(dest), "--data", str(data)])
        assert exited.value.code == 1
        out, err = capsys.readouterr()
        assert summary(out) == (len(stored.files), len(intact), 0, 2)
        assert sorted(err.splitlines()) == [
            f"failed: {changed}: its blob {blob_names[changed]}'s SHA-256 differs from the "
            "one recorded at ingest",
            f"failed: {gone}: its blob {blob_names[gone]} is not in the blob store"]
        if dest.suffix == ".zip":
            with zipfile.ZipFile(dest) as archive:
                assert sorted(archive.namelist()) == intact
        else:
            assert sorted(tree(dest)) == intact


@pytest.mark.parametrize(("args", "said"), [
    (["out"], "give the Study Instance UIDs to export, or --all (not both)"),
    (["--all", "1.2.3", "out"], "give the Study Instance UIDs to export, or --all (not both)"),
    (["1.2.x", "out"], "invalid study UID '1.2.x': a UID is digits and dots"),
    (["--all", "notes.txt"], "notes.txt is a file: give a folder, or a path ending in .zip"),
    (["--all", "bad.zip"], "bad.zip exists and is not a zip file (it is left as it is)"),
    (["--all", "nowhere/out.zip"], "the folder nowhere does not exist"),
    (["--all", "--store", "projects/p/locations/l/datasets/d/dicomStores/none", "out"],
     "DICOM store projects/p/locations/l/datasets/d/dicomStores/none not found"),
])
def test_argument_errors_are_one_line(stored: Stored, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, args: list[str],
                                      said: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a zip")
    (tmp_path / "bad.zip").write_text("not a zip either")
    with pytest.raises(SystemExit) as exited:
        main(["export", *args, "--data", str(stored.data)])
    message = str(exited.value.code)
    assert message.startswith("pacs: ") and said in message and "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zip", "notes.txt"]
    assert (tmp_path / "bad.zip").read_text() == "not a zip either"


def test_a_data_directory_without_an_archive_is_one_line(tmp_path: Path) -> None:
    done = pacs("export", "--all", str(tmp_path / "out"), "--data", str(tmp_path / "none"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"pacs: {tmp_path / 'none'} holds no archive (no " \
                                  "index.sqlite3)"
    assert list(tmp_path.iterdir()) == []
