"""A small compressed instance may claim a huge image (a decompression bomb): transcoding it
whole, or a frame of it, would decode more than `max_transcode_bytes`. It is refused before
any decoding, naming the size; retrieving it as stored still works."""

from io import BytesIO
from pathlib import Path

import pydicom
import requests
from pydicom.data import get_testdata_file

from tests.conftest import run_server

EXPLICIT = "1.2.840.10008.1.2.1"


def _bomb() -> bytes:
    """MR_small_RLE (64 x 64, 16-bit) claiming to be 4000 x 4000: 32 MB decoded."""
    ds = pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm", download=False))
    ds.Rows = ds.Columns = 4000
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_a_claimed_huge_image_is_not_decoded_to_transcode(tmp_path: Path) -> None:
    data = _bomb()
    ds = pydicom.dcmread(BytesIO(data))
    with run_server(tmp_path / "data", max_transcode_bytes=10_000_000) as running:
        root = f"http://127.0.0.1:{running.port}/dicomweb"
        stored = requests.post(f"{root}/studies", data=data,
                               headers={"Content-Type": "application/dicom"})
        assert stored.status_code == 200, stored.text
        url = (f"{root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/"
               f"instances/{ds.SOPInstanceUID}")
        whole = requests.get(url, headers={
            "Accept": f"application/dicom; transfer-syntax={EXPLICIT}"})
        assert whole.status_code == 406
        assert "decoded, 1 frame would take 32000000 bytes" in whole.text
        frame = requests.get(f"{url}/frames/1", headers={
            "Accept": "multipart/related; type=application/octet-stream; "
                      f"transfer-syntax={EXPLICIT}"})
        assert frame.status_code == 406
        assert "decoded, 1 frame would take 32000000 bytes" in frame.text
        as_stored = requests.get(url, headers={
            "Accept": "application/dicom; transfer-syntax=*"})
        assert as_stored.status_code == 200 and as_stored.content == data
