"""Retrieve frames: PS3.18 10.4 (frames resource), media types 8.7.3.3 and Table 8.7.3-5.

Frames are numbered from 1 and come back one part per frame in the order asked for.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.encaps import generate_frames

from conformance.corpus import Corpus, Instance
from conformance.wire import ANY_TS_OCTETS, decode_multipart, media_type

UNQUOTED_ANY_TS_OCTETS = "multipart/related; type=application/octet-stream; transfer-syntax=*"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
SOF0, SOF3 = b"\xff\xc0", b"\xff\xc3"  # baseline and lossless start-of-frame markers


def _frames(instance: Instance) -> list[bytes]:
    """The stored frames: native slices of Pixel Data, or each frame's encapsulated bitstream."""
    ds = instance.dataset
    count = int(ds.get("NumberOfFrames", 1) or 1)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        return list(generate_frames(ds.PixelData, number_of_frames=count))
    size = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
    return [ds.PixelData[i * size:(i + 1) * size] for i in range(count)]


def _get_frames(http: requests.Session, base_url: str, instance: Instance, numbers: list[int],
                accept: str) -> requests.Response:
    frame_list = ",".join(str(n) for n in numbers)
    return http.get(f"{base_url}/{instance.path}/frames/{frame_list}", headers={"Accept": accept})


@pytest.mark.parametrize("accept", [ANY_TS_OCTETS, UNQUOTED_ANY_TS_OCTETS],
                         ids=["quoted", "unquoted"])
def test_native_frames_in_request_order(corpus: Corpus, base_url: str, http: requests.Session,
                                        accept: str) -> None:
    """PS3.18 10.4 (frames resource), 8.7.3.3.1: native frames as application/octet-stream,
    one part per frame in the requested (not ascending) order; `type` quoted or not."""
    instance = corpus.named("rtdose.dcm")
    stored = _frames(instance)
    response = _get_frames(http, base_url, instance, [3, 1, 15], accept)
    assert response.status_code == 200, response.text[:300]
    parts = decode_multipart(response)
    assert [p.content for p in parts] == [stored[2], stored[0], stored[14]]
    assert {media_type(p.content_type)[0] for p in parts} == {"application/octet-stream"}


@pytest.mark.parametrize("accept", ['multipart/related; type="application/octet-stream"',
                                    "multipart/related; type=application/octet-stream"],
                         ids=["quoted", "unquoted"])
def test_native_frames_default_transfer_syntax(corpus: Corpus, base_url: str,
                                               http: requests.Session, accept: str) -> None:
    """PS3.18 8.7.3.4: without transfer-syntax, native frames are Explicit VR Little Endian
    (as stored here, so the bytes are the stored ones)."""
    instance = corpus.named("rtdose.dcm")
    response = _get_frames(http, base_url, instance, [2, 14], accept)
    assert response.status_code == 200, response.text[:300]
    stored = _frames(instance)
    assert [p.content for p in decode_multipart(response)] == [stored[1], stored[13]]


def test_single_frame_image(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """PS3.18 10.4 (frames resource): frame 1 of a single-frame image is its Pixel Data."""
    instance = corpus.named("ct05")
    response = _get_frames(http, base_url, instance, [1], ANY_TS_OCTETS)
    assert response.status_code == 200, response.text[:300]
    assert [p.content for p in decode_multipart(response)] == [instance.dataset.PixelData]


@pytest.mark.parametrize("name", ["SC_rgb_rle_2frame.dcm", "examples_ybr_color.dcm"])
def test_compressed_frames_any_transfer_syntax(corpus: Corpus, base_url: str,
                                               http: requests.Session, name: str,
                                               observe: Callable[[str, str], None]) -> None:
    """PS3.18 8.7.3.5.2 and 8.7.3.3.2: with `transfer-syntax=*` encapsulated frames come back
    as stored, each part one frame's bitstream without item delimiters, in requested order."""
    instance = corpus.named(name)
    stored = _frames(instance)
    response = _get_frames(http, base_url, instance, [2, 1], ANY_TS_OCTETS)
    assert response.status_code == 200, response.text[:300]
    parts = decode_multipart(response)
    assert [p.content for p in parts] == [stored[1], stored[0]]
    observe("part Content-Type", parts[0].content_type)


@pytest.mark.parametrize("accept", [
    f'multipart/related; type="image/jpeg"; transfer-syntax={JPEG_BASELINE}',
    f"multipart/related; type=image/jpeg; transfer-syntax={JPEG_BASELINE}",
], ids=["quoted", "unquoted"])
def test_jpeg_frames_in_their_syntax(corpus: Corpus, base_url: str, http: requests.Session,
                                     accept: str) -> None:
    """PS3.18 8.7.3.3.2, Table 8.7.3-5: image/jpeg with the stored JPEG Baseline syntax returns
    the stored bitstreams as image/jpeg parts."""
    instance = corpus.named("examples_ybr_color.dcm")
    stored = _frames(instance)
    response = _get_frames(http, base_url, instance, [30, 1, 2], accept)
    assert response.status_code == 200, response.text[:300]
    parts = decode_multipart(response)
    assert [p.content for p in parts] == [stored[29], stored[0], stored[1]]
    assert {media_type(p.content_type)[0] for p in parts} == {"image/jpeg"}


def test_rle_frames_in_default_syntax(corpus: Corpus, base_url: str,
                                      http: requests.Session) -> None:
    """PS3.18 Table 8.7.3-5: image/dicom-rle defaults to RLE Lossless, the stored syntax, so the
    stored bitstreams come back."""
    instance = corpus.named("SC_rgb_rle_2frame.dcm")
    response = _get_frames(http, base_url, instance, [1, 2],
                           'multipart/related; type="image/dicom-rle"')
    assert response.status_code == 200, response.text[:300]
    assert [p.content for p in decode_multipart(response)] == _frames(instance)


@pytest.mark.transcoding
def test_image_jpeg_defaults_to_lossless(corpus: Corpus, base_url: str,
                                         http: requests.Session,
                                         observe: Callable[[str, str], None]) -> None:
    """PS3.18 8.7.8.2 and Table 8.7.3-5: image/jpeg without transfer-syntax means the default,
    JPEG Lossless SV1 (.70); a server that cannot produce it answers 406 rather than send the
    stored lossy baseline bitstream."""
    instance = corpus.named("examples_ybr_color.dcm")
    response = _get_frames(http, base_url, instance, [1], 'multipart/related; type="image/jpeg"')
    observe("image/jpeg without transfer-syntax", str(response.status_code))
    if response.status_code == 406:
        return
    assert response.status_code == 200, response.text[:300]
    (part,) = decode_multipart(response)
    syntax = media_type(part.content_type)[1].get("transfer-syntax", JPEG_LOSSLESS_SV1)
    assert syntax == JPEG_LOSSLESS_SV1
    assert SOF3 in part.content and SOF0 not in part.content


def test_frame_beyond_count_is_an_error(corpus: Corpus, base_url: str, http: requests.Session,
                                        observe: Callable[[str, str], None]) -> None:
    """PS3.18 10.4.3.1 and 8.5: a frame number past NumberOfFrames is a client error (400 or
    404); the statement says 400."""
    response = _get_frames(http, base_url, corpus.named("rtdose.dcm"), [16], ANY_TS_OCTETS)
    observe("frame past the end", str(response.status_code))
    assert response.status_code in (400, 404)


def test_dicomweb_client_frames(corpus: Corpus, client: DICOMwebClient) -> None:
    """PS3.18 10.4: dicomweb-client's retrieve_instance_frames gets them in the order asked."""
    instance = corpus.named("rtdose.dcm")
    frames = client.retrieve_instance_frames(instance.study, instance.series, instance.sop,
                                             frame_numbers=[5, 4],
                                             media_types=(("application/octet-stream", "*"),))
    stored = _frames(instance)
    assert frames == [stored[4], stored[3]]
