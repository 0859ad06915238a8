"""JPEG XL JPEG Recompression (1.2.840.10008.1.2.4.111, PS3.5 A.4.12): a JPEG baseline
instance repacked losslessly as JPEG XL, and the same JPEG rebuilt from it bit for bit."""

from io import BytesIO

import imagecodecs
import numpy as np
import pydicom
import requests
from PIL import Image
from pydicom.encaps import generate_frames
from pydicom.uid import generate_uid

from tests.conftest import LiveServer
from tests.dataset_factories import corpus_bytes, instance_path
from tests.multipart_parts import media_params, parse_multipart

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
RECOMPRESSION = "1.2.840.10008.1.2.4.111"


def store(root: str, data: bytes) -> str:
    response = requests.post(f"{root}/studies", data=data,
                             headers={"Content-Type": "application/dicom"})
    assert response.status_code == 200, response.text
    return root + instance_path(pydicom.dcmread(BytesIO(data)))


def get_instance(url: str, syntax: str) -> requests.Response:
    return requests.get(url, headers={"Accept": f"application/dicom; transfer-syntax={syntax}"})


def first_frame(ds: pydicom.Dataset) -> bytes:
    return next(generate_frames(ds.PixelData, number_of_frames=1))


def test_jpeg_to_jpeg_xl_and_back_bit_for_bit(live_server: LiveServer) -> None:
    root = live_server.dicomweb
    source = pydicom.dcmread(BytesIO(corpus_bytes("SC_rgb_jpeg_dcmtk.dcm")))
    jpeg = first_frame(source)
    url = store(root, corpus_bytes("SC_rgb_jpeg_dcmtk.dcm"))

    response = get_instance(url, RECOMPRESSION)
    assert response.status_code == 200, response.text
    jxl = pydicom.dcmread(BytesIO(response.content))
    assert jxl.file_meta.TransferSyntaxUID == RECOMPRESSION
    assert jxl.PhotometricInterpretation == source.PhotometricInterpretation  # the JPEG's own
    assert jxl.get("LossyImageCompressionMethod") == source.get("LossyImageCompressionMethod")
    packed = first_frame(jxl)
    assert len(packed) < len(jpeg)
    assert imagecodecs.jpegxl_decode_jpeg(packed) == jpeg.rstrip(b"\0")

    frames = requests.get(f"{url}/frames/1", headers={
        "Accept": f"multipart/related; type=image/jxl; transfer-syntax={RECOMPRESSION}"})
    [(headers, part)] = parse_multipart(frames)
    assert media_params(headers["content-type"]) == ("image/jxl",
                                                     {"transfer-syntax": RECOMPRESSION})
    assert imagecodecs.jpegxl_decode_jpeg(part) == jpeg.rstrip(b"\0")

    # stored as JPEG XL, it is rebuilt as the original JPEG on request
    jxl.SOPInstanceUID = jxl.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    out = BytesIO()
    jxl.save_as(out, enforce_file_format=True)
    jxl_url = store(root, out.getvalue())
    rebuilt = pydicom.dcmread(BytesIO(get_instance(jxl_url, JPEG_BASELINE).content))
    assert rebuilt.file_meta.TransferSyntaxUID == JPEG_BASELINE
    assert first_frame(rebuilt).rstrip(b"\0") == jpeg.rstrip(b"\0")

    # and the JPEG XL instance renders like the JPEG one
    pictures = [np.asarray(Image.open(BytesIO(requests.get(
        f"{u}/rendered", headers={"Accept": "image/png"}).content)), float) for u in (url, jxl_url)]
    assert np.abs(pictures[0] - pictures[1]).mean() < 2


def test_only_jpeg_baseline_is_recompressed(live_server: LiveServer) -> None:
    root = live_server.dicomweb
    for name in ("CT_small.dcm", "JPGExtended.dcm"):
        response = get_instance(store(root, corpus_bytes(name)), RECOMPRESSION)
        assert response.status_code == 406, name
        assert JPEG_BASELINE in response.json()["error"]["message"]
