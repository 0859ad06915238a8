"""Transcoding on retrieve: PS3.18 8.7.3.5 (instances, Table 8.7.3-2) and 8.7.3.3 (frames,
Table 8.7.3-5), with 406 Not Acceptable (8.7.8.2) for what the server cannot produce.

Lossless sources and targets only, so every comparison is pixel for pixel. Asking for Explicit
VR Little Endian (by UID, or by leaving the transfer-syntax parameter out) and for native frames
is required of every server; producing a compressed syntax is not, so those tests are marked
`optional`, come last, and fail with "not supported" when the server answers 406. Every test
here makes the server transcode, so the module is marked `transcoding` and runs last.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO

import imagecodecs
import numpy as np
import pytest
import requests
from numpy.typing import NDArray
from pydicom import Dataset, dcmread
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from conformance.corpus import COMPRESSED, Corpus, Instance, build_compressed
from conformance.wire import DICOM_JSON, Part, decode_multipart, encode_multipart, media_type

pytestmark = pytest.mark.transcoding

DICOM_PARTS = 'multipart/related; type="application/dicom"'
OCTET_PARTS = 'multipart/related; type="application/octet-stream"'
NATIVE_LITTLE_ENDIAN = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}
# JPEG-LS last: Orthanc 1.10 exits while encoding it, and takes what follows down with it.
LOSSLESS_TARGETS = (RLELossless, JPEG2000Lossless, JPEGLSLossless)


@pytest.fixture(scope="module")
def compressed(corpus: Corpus, base_url: str, http: requests.Session) -> dict[str, Instance]:
    """MR_small.dcm as JPEG 2000 Lossless, RLE and JPEG-LS Lossless, stored into the module's
    study B in one multipart request (PS3.18 10.5)."""
    instances = build_compressed(corpus)
    body, content_type = encode_multipart([i.data for i in instances.values()])
    response = http.post(f"{base_url}/studies", data=body,
                         headers={"Content-Type": content_type, "Accept": DICOM_JSON})
    if response.status_code not in (200, 202):
        pytest.fail(f"storing the compressed instances answered {response.status_code}: "
                    f"{response.text[:500]}")
    return instances


def _get(http: requests.Session, url: str, accept: str) -> requests.Response:
    return http.get(url, headers={"Accept": accept})


def _native_bytes(pixels: NDArray[np.generic]) -> bytes:
    """Pixel values as native little-endian bytes (PS3.5 8.1.1, PS3.18 8.7.3.3.1)."""
    return np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()


def _instance(response: requests.Response, syntax: UID,
              observe: Callable[[str, str], None]) -> Dataset:
    """The one instance of a 200 multipart response, checked to be in `syntax`.

    PS3.18 8.7.9: a part's Content-Type has zero or one transfer-syntax parameter and, when
    present, it "shall specify the encoding" of the part; absent is recorded, not judged.
    """
    assert response.status_code == 200, f"{response.status_code}: {response.text[:300]}"
    (part,) = decode_multipart(response)
    kind, params = media_type(part.content_type)
    assert kind == "application/dicom", part.content_type
    dataset = dcmread(BytesIO(part.content))
    assert dataset.file_meta.TransferSyntaxUID == syntax, (
        f"asked for {syntax.name}, got {dataset.file_meta.TransferSyntaxUID.name}")
    labelled = params.get("transfer-syntax")
    observe("part Content-Type", part.content_type)
    if labelled is not None:
        assert labelled == syntax, f"part labelled {labelled}, encoded in {syntax}"
    return dataset


def _frame(response: requests.Response) -> Part:
    assert response.status_code == 200, f"{response.status_code}: {response.text[:300]}"
    (part,) = decode_multipart(response)
    return part


@pytest.mark.parametrize("name", COMPRESSED)
@pytest.mark.parametrize("accept", [f"{DICOM_PARTS}; transfer-syntax={ExplicitVRLittleEndian}",
                                    DICOM_PARTS], ids=["named", "default"])
def test_compressed_instance_as_explicit_vr_little_endian(
        compressed: dict[str, Instance], base_url: str, http: requests.Session,
        observe: Callable[[str, str], None], accept: str, name: str) -> None:
    """PS3.18 8.7.3.5.2, Table 8.7.3-2: Explicit VR Little Endian, named or as the default
    when transfer-syntax is left out, decompresses a compressed instance; the pixels are
    those of the lossless source."""
    instance = compressed[name]
    response = _get(http, f"{base_url}/{instance.path}", accept)
    dataset = _instance(response, ExplicitVRLittleEndian, observe)
    assert dataset.SOPInstanceUID == instance.sop
    assert np.array_equal(dataset.pixel_array, instance.dataset.pixel_array)


@pytest.mark.parametrize("name", COMPRESSED)
def test_compressed_frame_defaults_to_native_bytes(compressed: dict[str, Instance],
                                                   base_url: str, http: requests.Session,
                                                   name: str) -> None:
    """PS3.18 8.7.3.3.1 and Table 8.7.3-5: application/octet-stream without transfer-syntax is
    uncompressed little endian, so a compressed frame comes back decoded, as native bytes."""
    instance = compressed[name]
    part = _frame(_get(http, f"{base_url}/{instance.path}/frames/1", OCTET_PARTS))
    kind, params = media_type(part.content_type)
    assert kind == "application/octet-stream", part.content_type
    assert params.get("transfer-syntax", ExplicitVRLittleEndian) in NATIVE_LITTLE_ENDIAN
    assert part.content == _native_bytes(instance.dataset.pixel_array)


@pytest.mark.parametrize("resource", ["instance", "frame"])
def test_impossible_transfer_syntax_is_not_acceptable(corpus: Corpus, base_url: str,
                                                      http: requests.Session,
                                                      observe: Callable[[str, str], None],
                                                      resource: str) -> None:
    """PS3.18 8.7.8.2 and 8.5: 16-bit signed CT cannot be JPEG Baseline (8-bit samples only,
    PS3.5 A.4.1); the server answers 406 Not Acceptable (400 tolerated), never 200 with other
    data nor a 5xx."""
    instance = corpus.named("ct08")
    if resource == "instance":
        url = f"{base_url}/{instance.path}"
        accept = f"{DICOM_PARTS}; transfer-syntax={JPEGBaseline8Bit}"
    else:
        url = f"{base_url}/{instance.path}/frames/1"
        accept = f'multipart/related; type="image/jpeg"; transfer-syntax={JPEGBaseline8Bit}'
    response = _get(http, url, accept)
    observe("16-bit signed CT as JPEG Baseline", str(response.status_code))
    assert response.status_code in (400, 406), \
        f"{response.status_code}: {response.text[:300]}"


@pytest.mark.optional
def test_native_frame_as_jpeg_2000_lossless(corpus: Corpus, base_url: str,
                                            http: requests.Session) -> None:
    """PS3.18 8.7.3.3.2, Table 8.7.3-5: image/jp2 with JPEG 2000 Lossless (.90) gives a
    codestream that decodes to the stored frame. Optional media type: 406 is reported as not
    supported."""
    instance = corpus.named("ct07")
    response = _get(http, f"{base_url}/{instance.path}/frames/1",
                    f'multipart/related; type="image/jp2"; transfer-syntax={JPEG2000Lossless}')
    if response.status_code == 406:
        pytest.fail("image/jp2 frames not supported (406)")
    part = _frame(response)
    kind, params = media_type(part.content_type)
    assert kind == "image/jp2", part.content_type
    assert params.get("transfer-syntax", JPEG2000Lossless) == JPEG2000Lossless
    decoded = imagecodecs.jpeg2k_decode(part.content)
    assert np.array_equal(decoded, instance.dataset.pixel_array)


@pytest.mark.optional
@pytest.mark.parametrize("syntax", LOSSLESS_TARGETS, ids=lambda s: str(s))
def test_native_instance_in_lossless_compressed_syntax(
        corpus: Corpus, base_url: str, http: requests.Session,
        observe: Callable[[str, str], None], syntax: UID) -> None:
    """PS3.18 8.7.3.5.2, Table 8.7.3-2: an instance asked for in a lossless compressed syntax
    comes back encoded in it with identical pixels. Optional: a server may refuse with 406
    (8.7.8.2), which this test reports as not supported."""
    instance = corpus.named("ct06")
    response = _get(http, f"{base_url}/{instance.path}",
                    f"{DICOM_PARTS}; transfer-syntax={syntax}")
    if response.status_code == 406:
        pytest.fail(f"transcoding to {syntax.name} not supported (406)")
    dataset = _instance(response, syntax, observe)
    assert dataset.SOPInstanceUID == instance.sop
    assert np.array_equal(dataset.pixel_array, instance.dataset.pixel_array)
