"""`pacs import` as an operator runs it: a subprocess on a folder of 1,000 generated files
(a zip among them, a few broken files and duplicates); its summary and exit code; a second
run that stores nothing again; and a server on the same data directory serving them all."""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests

from tests.conftest import run_server
from tests.dataset_factories import ct_series

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SUMMARY = re.compile(r"(\d+) files: (\d+) stored, (\d+) already stored, (\d+) failed in ")


def pacs_import(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pacs", "import", "--quiet", *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd)


def summary(done: subprocess.CompletedProcess[str]) -> tuple[int, ...]:
    found = SUMMARY.search(done.stdout)
    assert found, done.stdout + done.stderr
    return tuple(int(n) for n in found.groups())


def test_import_a_folder_twice_and_serve_it(tmp_path: Path) -> None:
    source = tmp_path / "incoming"
    files = ct_series(1000, size=8, patient="IMPORT^ME")
    for number, data in enumerate(files[:950]):
        folder = source / f"series{number // 100}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{number}.dcm").write_bytes(data)
    with zipfile.ZipFile(source / "rest.zip", "w") as archive:
        for number, data in enumerate(files[950:]):
            archive.writestr(f"rest/{number}.dcm", data)
    for number in range(3):  # copies of files already in the folder
        (source / f"copy{number}.dcm").write_bytes(files[number])
    (source / "notes.txt").write_text("not DICOM")
    (source / "cut.dcm").write_bytes(files[5][:300])
    data_dir = tmp_path / "data"

    first = pacs_import(str(source), "--data", str(data_dir), "--jobs", "4")
    assert first.returncode == 1  # some files failed
    assert summary(first) == (1005, 1000, 3, 2)
    failed = [line for line in first.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 2 and any("notes.txt" in line for line in failed), first.stderr
    assert "Traceback" not in first.stderr

    again = pacs_import(str(source), "--data", str(data_dir))
    assert summary(again) == (1005, 0, 1003, 2)

    with run_server(data_dir) as running:
        root = f"http://127.0.0.1:{running.port}/dicomweb"
        [study] = requests.get(f"{root}/studies", params={"PatientName": "import*"}).json()
        assert study["00201208"]["Value"] == [1000]


def test_import_of_a_path_that_does_not_exist_is_one_clear_line(tmp_path: Path) -> None:
    done = pacs_import(str(tmp_path / "nowhere"), "--data", str(tmp_path / "data"))
    assert done.returncode != 0
    assert done.stderr.strip().endswith("no such file or folder")
    assert "Traceback" not in done.stderr and not (tmp_path / "data").exists()


@pytest.mark.parametrize("command", ["import", "verify"])
def test_a_mistyped_store_is_one_line_and_never_created(tmp_path: Path, command: str) -> None:
    source = tmp_path / "one.dcm"
    source.write_bytes(ct_series(1, size=8)[0])
    name = "projects/p/locations/l/datasets/d/dicomStores/typo"
    args = [str(source)] if command == "import" else []
    subprocess.run([sys.executable, "-m", "pacs", "stores", "--data", str(tmp_path / "data"),
                    "list"], capture_output=True, timeout=120, check=True)  # an archive
    done = subprocess.run([sys.executable, "-m", "pacs", command, *args, "--data",
                           str(tmp_path / "data"), "--store", name], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert done.stderr == (f"pacs: DICOM store {name} not found in {tmp_path / 'data'} "
                           "(create it with pacs stores create)\n")
    listed = subprocess.run([sys.executable, "-m", "pacs", "stores", "--data",
                             str(tmp_path / "data"), "list"], capture_output=True, text=True,
                            timeout=120, check=True)
    assert name not in listed.stdout


def test_import_with_url_sends_to_another_server_and_skips_what_it_lists(
        tmp_path: Path) -> None:
    source = tmp_path / "incoming"
    source.mkdir()
    files = ct_series(40, size=8, patient="UPLOAD^ME")
    for number, data in enumerate(files):
        (source / f"{number}.dcm").write_bytes(data)
    (source / "cut.dcm").write_bytes(files[0][:300])
    with run_server(tmp_path / "remote") as running:
        root = f"http://127.0.0.1:{running.port}/dicomweb"
        first = pacs_import(str(source), "--url", root, "--jobs", "4", cwd=tmp_path)
        assert (first.returncode, summary(first)) == (1, (41, 40, 0, 1))
        assert "failed: " in first.stderr and "HTTP 409, FailureReason 0xC000" in first.stderr
        again = pacs_import(str(source), "--url", root)
        assert summary(again) == (41, 0, 40, 1)
        [study] = requests.get(f"{root}/studies", params={"PatientName": "upload*"}).json()
        assert study["00201208"]["Value"] == [40]
        unreachable = pacs_import(str(source / "1.dcm"), "--url", "http://127.0.0.1:1/x")
        assert unreachable.returncode == 1 and "could not be reached" in unreachable.stderr
    assert not (tmp_path / "pacs-data").exists()  # nothing was written locally
