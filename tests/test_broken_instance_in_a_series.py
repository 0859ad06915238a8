"""A series holding one instance whose stored pixel data cannot be decoded (an RLE segment
offset past its data: the Rust decoder panics): answers about the series never end in a
body cut off after its 200. Transcoded and rendered series leave that instance's part out
(each part names its instance), and the instance alone answers a clear 400."""

from io import BytesIO

import pydicom
import pytest
import requests
from pydicom.uid import generate_uid

from tests.conftest import LiveServer
from tests.dataset_factories import corpus_bytes, edited
from tests.multipart_parts import parse_multipart

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

RLE_OFFSETS = bytes.fromhex("02000000400000009c070000")  # two segments, the second at 0x79c
BROKEN_OFFSETS = bytes.fromhex("020000004000000082070000")  # the second starts too early


def series_with_a_broken_instance() -> tuple[bytes, bytes]:
    study, series = generate_uid(), generate_uid()
    good, bad = (edited(corpus_bytes("MR_small_RLE.dcm"), StudyInstanceUID=study,
                        SeriesInstanceUID=series, SOPInstanceUID=generate_uid(),
                        InstanceNumber=number) for number in (1, 2))
    assert bad.count(RLE_OFFSETS) == 1
    return good, bad.replace(RLE_OFFSETS, BROKEN_OFFSETS)


def url(root: str, data: bytes, suffix: str = "") -> str:
    ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
    return (f"{root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            + (f"/instances/{ds.SOPInstanceUID}" if suffix != "series" else ""))


def test_a_broken_instance_is_left_out_of_a_series_never_cut(live_server: LiveServer) -> None:
    root = live_server.dicomweb
    good, bad = series_with_a_broken_instance()
    for data in (good, bad):
        assert requests.post(f"{root}/studies", data=data,
                             headers={"Content-Type": "application/dicom"}).status_code == 200
    series = url(root, good, "series")

    transcoded = requests.get(series, headers={
        "Accept": 'multipart/related; type="application/dicom"; '
                  "transfer-syntax=1.2.840.10008.1.2.1"})
    assert transcoded.status_code == 200
    [(headers, body)] = parse_multipart(transcoded)  # complete, one part: the good one
    assert headers["content-location"] == url(root, good)
    assert pydicom.dcmread(BytesIO(body)).pixel_array.shape == (64, 64)

    rendered = requests.get(f"{series}/rendered", headers={
        "Accept": 'multipart/related; type="image/png"'})
    assert rendered.status_code == 200
    [(headers, body)] = parse_multipart(rendered)
    assert headers["content-location"] == f"{url(root, good)}/rendered"
    assert body.startswith(b"\x89PNG")

    alone = requests.get(f"{url(root, bad)}/rendered", headers={"Accept": "image/png"})
    assert alone.status_code == 400
    assert "cannot be processed" in alone.json()["error"]["message"]
    as_stored = requests.get(series, headers={
        "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    assert sorted(body for _, body in parse_multipart(as_stored)) == sorted([good, bad])
