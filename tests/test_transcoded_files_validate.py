"""Transcoded instances are valid DICOM by an independent validator: dicom3tools' dciodvfy
reports no error that the stored source did not already have (PS3.3 IODs, PS3.5 encoding).
dciodvfy (2022) predates HTJ2K, JPEG XL and deflated image frames, and cannot read deflated
datasets (not even pydicom's own example), so those are not checked here."""

import shutil
import subprocess
from io import BytesIO
from pathlib import Path

import pytest
import requests
from pydicom import dcmread

from tests.conftest import LiveServer
from tests.dataset_factories import corpus_bytes, ct_series

DCIODVFY = shutil.which("dciodvfy")
pytestmark = pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (Debian dicom3tools) is "
                                                         "not installed; .ci/run installs it")

EXPLICIT_LE = "1.2.840.10008.1.2.1"
TARGETS = ("1.2.840.10008.1.2", EXPLICIT_LE, "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50",
           "1.2.840.10008.1.2.4.51",
           "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
           "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")
SOURCES = ("CT_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "examples_ybr_color.dcm",
           "examples_palette.dcm", "SC_rgb_rle_2frame.dcm")  # dciodvfy aborts on rtdose's 32 bits
NATIVE = ("1.2.840.10008.1.2", EXPLICIT_LE)


def errors(path: Path) -> set[str]:
    assert DCIODVFY is not None
    report = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    return {line for line in report.stderr.splitlines() if line.startswith("Error")}


def retrieve(url: str, target: str) -> requests.Response:
    return requests.get(url, headers={"Accept": f"application/dicom; transfer-syntax={target}"})


@pytest.fixture(scope="module")
def stored(shared_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, tuple[str, set[str], set[str]]]:
    """Each source stored: its instance URL, the errors dciodvfy finds in it as stored, and
    those it finds once re-encoded in Explicit VR Little Endian (the baseline a compressed
    encoding is held to: dciodvfy checks some attributes only once it reads the pixels)."""
    folder = tmp_path_factory.mktemp("sources")
    files = {name: corpus_bytes(name) for name in SOURCES}
    files["generated_ct.dcm"] = ct_series(1, size=64)[0]
    found = {}
    for name, data in files.items():
        response = requests.post(f"{shared_server.dicomweb}/studies", data=data,
                                 headers={"Content-Type": "application/dicom"})
        assert response.status_code == 200, response.text
        ds = dcmread(BytesIO(data))
        url = (f"{shared_server.dicomweb}/studies/{ds.StudyInstanceUID}/series/"
               f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}")
        (folder / name).write_bytes(data)
        (folder / f"{name}.ele").write_bytes(retrieve(url, EXPLICIT_LE).content)
        found[name] = (url, errors(folder / name), errors(folder / f"{name}.ele"))
    return found


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("source", [*SOURCES, "generated_ct.dcm"])
def test_transcoded_instance_passes_dciodvfy(stored: dict[str, tuple[str, set[str], set[str]]],
                                             tmp_path: Path, source: str, target: str) -> None:
    url, as_stored, native = stored[source]
    before = as_stored if target in NATIVE else as_stored | native
    response = retrieve(url, target)
    if response.status_code == 406:
        assert response.json()["error"]["message"]  # refused with a reason
        return
    assert response.status_code == 200, response.text
    path = tmp_path / "out.dcm"
    path.write_bytes(response.content)
    assert dcmread(path).file_meta.TransferSyntaxUID == target
    assert errors(path) - before == set()
