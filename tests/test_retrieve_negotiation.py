"""Retrieve (WADO-RS) content negotiation against a live server: every Accept form a client
sends for instances, series, studies, metadata, frames and bulk data, with the 406/404/400
answers, under `/dicomweb` and the Cloud Healthcare API paths; absolute URLs behind a proxy.
"""

from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import requests
from pydicom.encaps import generate_frames

from tests.conftest import LiveServer, run_server
from tests.dataset_factories import corpus_files, instance_path
from tests.multipart_parts import media_params, parse_multipart

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DICOM = "application/dicom"
OCTET = "application/octet-stream"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
GOOGLE_STORE = "projects/local/locations/local/datasets/default/dicomStores/default"
MR_STUDY = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"


@dataclass(frozen=True)
class Stored:
    """One stored corpus file: its bytes, pydicom's reading and its path under a root."""

    data: bytes
    ds: pydicom.Dataset

    @property
    def ts(self) -> str:
        return str(self.ds.file_meta.TransferSyntaxUID)

    @property
    def path(self) -> str:
        return instance_path(self.ds)

    def frames(self) -> list[bytes]:
        count = int(self.ds.get("NumberOfFrames", 1) or 1)
        if self.ds.file_meta.TransferSyntaxUID.is_encapsulated:
            return list(generate_frames(self.ds.PixelData, number_of_frames=count))
        size = len(self.ds.PixelData) // count
        return [self.ds.PixelData[i * size:(i + 1) * size] for i in range(count)]


@pytest.fixture(scope="module")
def corpus(shared_server: LiveServer) -> dict[str, Stored]:
    files = corpus_files()
    boundary = "corpus-boundary"
    body = b"".join(f"--{boundary}\r\nContent-Type: {DICOM}\r\n\r\n".encode() + data + b"\r\n"
                    for data in files.values()) + f"--{boundary}--".encode()
    response = requests.post(f"{shared_server.dicomweb}/studies", data=body, headers={
        "Content-Type": f'multipart/related; type="{DICOM}"; boundary={boundary}'})
    assert response.status_code == 200, response.text
    return {name: Stored(data, pydicom.dcmread(BytesIO(data))) for name, data in files.items()}


@pytest.fixture(params=["dicomweb", "v1", "v1beta1"])
def root(request: pytest.FixtureRequest, shared_server: LiveServer) -> str:
    """The same default store under each of the roots that address it."""
    if request.param == "dicomweb":
        return shared_server.dicomweb
    return shared_server.google(GOOGLE_STORE, version=request.param)


def get(url: str, accept: str | None = None, **headers: str) -> requests.Response:
    if accept is not None:
        headers["Accept"] = accept
    return requests.get(url, headers=headers)


def assert_error(response: requests.Response, status: int, *fragments: str) -> str:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == status
    assert isinstance(error["status"], str) and error["status"]
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    return str(error["message"])


# -- Instances ---------------------------------------------------------------------------------

MULTIPART_AS_STORED = [
    None,
    "*/*",
    f'multipart/related; type="{DICOM}"; transfer-syntax=*',
    f"multipart/related; type={DICOM}; transfer-syntax=*",
    f'multipart/related; transfer-syntax=*; type="{DICOM}"',
    'multipart/related; type="application/dicom"; transfer-syntax="*"',
    "multipart/*",
    f'application/dicom+json, multipart/related; type="{DICOM}"; transfer-syntax=*; q=0.5',
]
SINGLE_AS_STORED = [f"{DICOM}; transfer-syntax=*", f'{DICOM};transfer-syntax="*"']


@pytest.mark.parametrize("accept", MULTIPART_AS_STORED)
@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_implicit.dcm", "JPEG2000.dcm",
                                  "MR_small_bigendian.dcm"])
def test_instance_multipart_as_stored(corpus: dict[str, Stored], root: str, name: str,
                                      accept: str | None) -> None:
    item = corpus[name]
    response = get(root + item.path, accept)
    assert response.status_code == 200, response.text
    media, params = media_params(response.headers["content-type"])
    assert (media, params["type"]) == ("multipart/related", DICOM)
    [(headers, body)] = parse_multipart(response)
    assert body == item.data
    assert media_params(headers["content-type"]) == (DICOM, {"transfer-syntax": item.ts})
    assert headers["content-location"] == root + item.path


@pytest.mark.parametrize("accept", SINGLE_AS_STORED)
@pytest.mark.parametrize("name", ["CT_small.dcm", "JPEG2000.dcm", "MR_small_bigendian.dcm"])
def test_instance_single_part_as_stored(corpus: dict[str, Stored], root: str, name: str,
                                        accept: str) -> None:
    item = corpus[name]
    response = get(root + item.path, accept)
    assert response.status_code == 200, response.text
    assert media_params(response.headers["content-type"]) == (DICOM,
                                                              {"transfer-syntax": item.ts})
    assert response.content == item.data
    assert response.headers["content-length"] == str(len(item.data))


@pytest.mark.parametrize("accept", [
    f'multipart/related; type="{DICOM}"',
    f"multipart/related; type={DICOM}",
    f'multipart/related; type="{DICOM}"; transfer-syntax={EXPLICIT_LE}',
    f"multipart/related; transfer-syntax={EXPLICIT_LE}; type={DICOM}",
    DICOM,
    f"{DICOM}; transfer-syntax={EXPLICIT_LE}",
])
def test_explicit_little_endian_is_the_default_syntax(corpus: dict[str, Stored], root: str,
                                                      accept: str) -> None:
    """No transfer-syntax parameter means Explicit VR Little Endian (PS3.18 8.7.3.5.2)."""
    stored = corpus["CT_small.dcm"]
    response = get(root + stored.path, accept)
    assert response.status_code == 200, response.text
    body = (parse_multipart(response)[0][1] if accept.startswith("multipart")
            else response.content)
    assert body == stored.data
    for name in ("MR_small_implicit.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm",
                 "MR_small_bigendian.dcm"):
        other = corpus[name]
        response = get(root + other.path, accept)
        assert response.status_code == 200, response.text
        body = (parse_multipart(response)[0][1] if accept.startswith("multipart")
                else response.content)
        sent = pydicom.dcmread(BytesIO(body))
        source = pydicom.dcmread(BytesIO(other.data))
        assert sent.file_meta.TransferSyntaxUID == EXPLICIT_LE  # decompressed / re-encoded
        assert np.array_equal(sent.pixel_array, source.pixel_array)


@pytest.mark.parametrize("name", ["MR_small_implicit.dcm", "MR_small_bigendian.dcm"])
def test_syntaxes_kept_off_the_web_are_not_produced_on_request(corpus: dict[str, Stored],
                                                              root: str, name: str) -> None:
    """PS3.18 8.7.3: Implicit VR Little Endian and Explicit VR Big Endian "shall not be used
    with Web Services": asked for by name, 406; asked for as stored, the stored file."""
    item = corpus[name]
    for syntax in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.2"):
        for accept in (f'multipart/related; type="{DICOM}"; transfer-syntax={syntax}',
                       f"{DICOM}; transfer-syntax={syntax}"):
            assert_error(get(root + item.path, accept), 406, "PS3.18 8.7.3")
        frames = get(f"{root}{item.path}/frames/1",
                     f"multipart/related; type={OCTET}; transfer-syntax={syntax}")
        assert_error(frames, 406, "PS3.18 8.7.3")
    assert get(root + item.path, f"{DICOM}; transfer-syntax=*").content == item.data


@pytest.mark.parametrize("name", ["JPEG2000.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg.dcm"])
def test_the_stored_syntax_by_name(corpus: dict[str, Stored], root: str, name: str) -> None:
    item = corpus[name]
    for accept in (f'multipart/related; type="{DICOM}"; transfer-syntax={item.ts}',
                   f"{DICOM}; transfer-syntax={item.ts}"):
        response = get(root + item.path, accept)
        assert response.status_code == 200, (accept, response.text)
        body = (parse_multipart(response)[0][1] if accept.startswith("multipart")
                else response.content)
        assert body == item.data


@pytest.mark.parametrize("accept", [
    "application/dicom+json",
    "application/json",
    "image/jpeg",
    "text/html",
    f'multipart/related; type="{DICOM}"; transfer-syntax=1.2.840.10008.1.2.4.50',
    'multipart/related; type="application/dicom+xml"',
    f"{DICOM}; transfer-syntax=1.2.840.10008.1.2.4.81",  # near-lossless: signed CT refused
    f"{DICOM}; transfer-syntax=1.2.840.10008.1.2.4.100",  # MPEG-2: not an image target
    f'multipart/related; type="{DICOM}"; transfer-syntax=*; q=0',
])
def test_unproducible_instance_representations_are_406(corpus: dict[str, Stored], root: str,
                                                       accept: str) -> None:
    assert_error(get(root + corpus["CT_small.dcm"].path, accept), 406)


# -- Series and studies ------------------------------------------------------------------------


def _by_sop(corpus: dict[str, Stored]) -> dict[str, Stored]:
    return {str(s.ds.SOPInstanceUID): s for s in corpus.values()}


@pytest.mark.parametrize("accept", MULTIPART_AS_STORED)
def test_study_with_mixed_syntaxes_as_stored(corpus: dict[str, Stored], root: str,
                                             accept: str | None) -> None:
    response = get(f"{root}/studies/{MR_STUDY}", accept)
    assert response.status_code == 200, response.text
    parts = parse_multipart(response)
    expected = {sop: s for sop, s in _by_sop(corpus).items()
                if s.ds.StudyInstanceUID == MR_STUDY}
    assert len(parts) == len(expected) >= 5
    for headers, body in parts:
        sop = headers["content-location"].rsplit("/", 1)[1]
        assert body == expected[sop].data
        assert media_params(headers["content-type"])[1]["transfer-syntax"] == expected[sop].ts
        assert headers["content-location"].startswith(root + "/studies/")


@pytest.mark.parametrize("accept", [f'multipart/related; type="{DICOM}"',
                                    f'multipart/related; type="{DICOM}"; '
                                    f"transfer-syntax={EXPLICIT_LE}"])
def test_study_with_mixed_syntaxes_in_one_syntax(corpus: dict[str, Stored], root: str,
                                                 accept: str) -> None:
    """Each instance not stored in the asked syntax is transcoded (PS3.18 8.7.3.5)."""
    response = get(f"{root}/studies/{MR_STUDY}", accept)
    assert response.status_code == 200, response.text
    expected = {sop: s for sop, s in _by_sop(corpus).items()
                if s.ds.StudyInstanceUID == MR_STUDY}
    parts = parse_multipart(response)
    assert len(parts) == len(expected)
    for headers, body in parts:
        assert media_params(headers["content-type"])[1]["transfer-syntax"] == EXPLICIT_LE
        sent = pydicom.dcmread(BytesIO(body))
        source = expected[headers["content-location"].rsplit("/", 1)[1]]
        assert sent.file_meta.TransferSyntaxUID == EXPLICIT_LE
        assert np.array_equal(sent.pixel_array, source.ds.pixel_array)


@pytest.mark.parametrize("accept", [DICOM, f"{DICOM}; transfer-syntax=*"])
def test_study_is_never_single_part(corpus: dict[str, Stored], root: str, accept: str) -> None:
    assert_error(get(f"{root}/studies/{MR_STUDY}", accept), 406)


def test_series_of_one_syntax_with_default_accept(corpus: dict[str, Stored], root: str) -> None:
    ct = corpus["CT_small.dcm"].ds
    for accept in (f'multipart/related; type="{DICOM}"', f"multipart/related; type={DICOM}"):
        response = get(f"{root}/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}",
                       accept)
        assert response.status_code == 200, response.text
        assert [b for _h, b in parse_multipart(response)] == [corpus["CT_small.dcm"].data]
        assert media_params(response.headers["content-type"])[1].get(
            "transfer-syntax") in (None, EXPLICIT_LE)


@pytest.mark.parametrize("suffix", [
    "/studies/1.2.3.4",
    f"/studies/{MR_STUDY}/series/1.2.3.4",
    f"/studies/{MR_STUDY}/series/1.2.3.4/instances/1.2.3.4",
    "/studies/1.2.3.4/series/1.2.3.4/instances/1.2.3.4/metadata",
    "/studies/1.2.3.4/metadata",
    "/studies/1.2.3.4/series/1.2.3.4/instances/1.2.3.4/frames/1",
    "/studies/1.2.3.4/series/1.2.3.4/instances/1.2.3.4/bulkdata/7FE00010",
])
def test_unknown_resources_are_404(corpus: dict[str, Stored], root: str, suffix: str) -> None:
    response = get(root + suffix, "*/*")
    assert_error(response, 404)
    assert response.json()["error"]["status"] == "NOT_FOUND"


def test_an_instance_under_the_wrong_series_is_404(corpus: dict[str, Stored], root: str) -> None:
    ct, mr = corpus["CT_small.dcm"].ds, corpus["MR_small.dcm"].ds
    wrong = (f"{root}/studies/{ct.StudyInstanceUID}/series/{mr.SeriesInstanceUID}"
             f"/instances/{ct.SOPInstanceUID}")
    assert_error(get(wrong), 404)


@pytest.mark.parametrize("template", [
    "/studies/{bad}", "/studies/{bad}/metadata",
    "/studies/{study}/series/{bad}", "/studies/{study}/series/{bad}/metadata",
    "/studies/{study}/series/{series}/instances/{bad}",
    "/studies/{study}/series/{series}/instances/{bad}/metadata",
    "/studies/{study}/series/{series}/instances/{bad}/frames/1",
    "/studies/{study}/series/{series}/instances/{bad}/bulkdata/7FE00010",
    "/studies/{bad}/series/{series}/instances/{sop}/frames/1",
])
@pytest.mark.parametrize("bad", ["1.2.abc", "1..2", "1" * 65, "%2E%2E"])
def test_invalid_uids_in_the_path_are_400(corpus: dict[str, Stored], root: str, template: str,
                                          bad: str) -> None:
    ct = corpus["CT_small.dcm"].ds
    url = root + template.format(bad=bad, study=ct.StudyInstanceUID,
                                 series=ct.SeriesInstanceUID, sop=ct.SOPInstanceUID)
    assert_error(get(url, "*/*"), 400, "UID")


@pytest.mark.parametrize("prefix", [
    "/v1/projects/x/locations/y/datasets/z/dicomStores/w/dicomWeb",
    "/v1beta1/projects/local/locations/local/datasets/default/dicomStores/other/dicomWeb",
    f"/v2/{GOOGLE_STORE}/dicomWeb",
    f"/v1alpha2/{GOOGLE_STORE}/dicomWeb",
])
@pytest.mark.parametrize("suffix", ["/studies", "/studies/{study}", "/studies/{study}/metadata"])
def test_unknown_store_or_version_is_404(corpus: dict[str, Stored], shared_server: LiveServer,
                                         prefix: str, suffix: str) -> None:
    study = corpus["CT_small.dcm"].ds.StudyInstanceUID
    response = get(shared_server.base + prefix + suffix.format(study=study), "*/*")
    assert_error(response, 404)
    assert response.json()["error"]["status"] == "NOT_FOUND"


# -- Metadata ----------------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [None, "*/*", "application/dicom+json", "application/json",
                                    "application/*", "application/dicom+json; q=1, */*; q=0.1"])
def test_metadata_accept_variants(corpus: dict[str, Stored], root: str,
                                  accept: str | None) -> None:
    item = corpus["CT_small.dcm"]
    response = get(f"{root}{item.path}/metadata", accept)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(("application/dicom+json",
                                                        "application/json"))
    [metadata] = response.json()
    assert metadata["00080018"]["Value"] == [item.ds.SOPInstanceUID]
    assert metadata["7FE00010"]["BulkDataURI"] == f"{root}{item.path}/bulkdata/7FE00010"


@pytest.mark.parametrize("accept", ["application/dicom+xml", DICOM, "text/html",
                                    f'multipart/related; type="{DICOM}"'])
def test_metadata_unproducible_is_406(corpus: dict[str, Stored], root: str, accept: str) -> None:
    assert_error(get(f"{root}{corpus['CT_small.dcm'].path}/metadata", accept), 406)


def test_study_and_series_metadata(corpus: dict[str, Stored], root: str) -> None:
    study = get(f"{root}/studies/{MR_STUDY}/metadata").json()
    expected = {s.ds.SOPInstanceUID for s in corpus.values()
                if s.ds.StudyInstanceUID == MR_STUDY}
    assert {m["00080018"]["Value"][0] for m in study} == expected
    rt = corpus["rtdose.dcm"].ds
    series = get(f"{root}/studies/{rt.StudyInstanceUID}/series/{rt.SeriesInstanceUID}"
                 "/metadata").json()
    assert [m["00080018"]["Value"][0] for m in series] == [rt.SOPInstanceUID]


# -- Frames ------------------------------------------------------------------------------------

NATIVE_FRAME_ACCEPTS = [
    None,
    "*/*",
    f'multipart/related; type="{OCTET}"; transfer-syntax=*',
    f"multipart/related; type={OCTET}; transfer-syntax=*",
    f"multipart/related; transfer-syntax=*; type={OCTET}",
    'multipart/related; type="*/*"',
    f'multipart/related; type="{OCTET}"',
    f"multipart/related; type={OCTET}; transfer-syntax={EXPLICIT_LE}",
]


def _frames(response: requests.Response) -> list[bytes]:
    assert response.status_code == 200, response.text
    return [body for _headers, body in parse_multipart(response)]


@pytest.mark.parametrize("accept", NATIVE_FRAME_ACCEPTS)
@pytest.mark.parametrize("name", ["rtdose.dcm", "CT_small.dcm", "MR_small_implicit.dcm"])
def test_native_frames(corpus: dict[str, Stored], root: str, name: str,
                       accept: str | None) -> None:
    item = corpus[name]
    expected = item.frames()
    wanted = [len(expected), 1] if len(expected) > 1 else [1]
    response = get(f"{root}{item.path}/frames/{','.join(map(str, wanted))}", accept)
    assert _frames(response) == [expected[n - 1] for n in wanted]
    for headers, _body in parse_multipart(response):
        media, params = media_params(headers["content-type"])
        assert media == OCTET
        assert params["transfer-syntax"] in (EXPLICIT_LE, item.ts)


ENCAPSULATED = {
    "JPEG2000.dcm": "image/jp2",
    "MR_small_RLE.dcm": "image/dicom-rle",
    "SC_rgb_rle_2frame.dcm": "image/dicom-rle",
    "MR_small_jpeg_ls_lossless.dcm": "image/jls",
    "JPEG-lossy.dcm": "image/jpeg",
    "SC_rgb_jpeg.dcm": "image/jpeg",
    "examples_ybr_color.dcm": "image/jpeg",
}


@pytest.mark.parametrize("name", sorted(ENCAPSULATED))
def test_encapsulated_frames_in_every_accepted_form(corpus: dict[str, Stored], root: str,
                                                    name: str) -> None:
    item = corpus[name]
    media = ENCAPSULATED[name]
    expected = item.frames()
    wanted = sorted({len(expected), 1, (len(expected) + 1) // 2}, reverse=True)
    url = f"{root}{item.path}/frames/{','.join(map(str, wanted))}"
    for accept in (None, "*/*", f'multipart/related; type="{OCTET}"; transfer-syntax=*',
                   f"multipart/related; type={OCTET}; transfer-syntax=*",
                   'multipart/related; type="*/*"', "multipart/related; type=*/*",
                   f'multipart/related; type="{media}"; transfer-syntax={item.ts}',
                   f"multipart/related; transfer-syntax={item.ts}; type={media}",
                   f'multipart/related; type="{media}"; transfer-syntax=*'):
        response = get(url, accept)
        assert _frames(response) == [expected[n - 1] for n in wanted], accept
        for headers, _body in parse_multipart(response):
            assert media_params(headers["content-type"]) == (media, {"transfer-syntax": item.ts})


@pytest.mark.parametrize("name", sorted(ENCAPSULATED))
def test_encapsulated_frames_decoded_to_native(corpus: dict[str, Stored], root: str,
                                               name: str) -> None:
    """octet-stream without transfer-syntax means Explicit VR Little Endian: the frame is
    decoded (PS3.18 Table 8.7.3-5); frames are multipart only."""
    item = corpus[name]
    url = f"{root}{item.path}/frames/1"
    size = item.ds.Rows * item.ds.Columns * item.ds.SamplesPerPixel * item.ds.BitsAllocated // 8
    for accept in (f'multipart/related; type="{OCTET}"',
                   f"multipart/related; type={OCTET}; transfer-syntax={EXPLICIT_LE}"):
        response = get(url, accept)
        assert response.status_code == 200, response.text
        [(headers, body)] = parse_multipart(response)
        assert media_params(headers["content-type"]) == (OCTET, {"transfer-syntax": EXPLICIT_LE})
        assert len(body) == size
    for accept in ("image/jpeg", f"{OCTET}; transfer-syntax=*"):
        assert_error(get(url, accept), 406)


def test_default_media_type_of_a_compressed_syntax(corpus: dict[str, Stored],
                                                   root: str) -> None:
    """image/jpeg without transfer-syntax means JPEG Lossless SV1 (PS3.18 Table 8.7.3-5): lossy
    JPEG frames are re-encoded losslessly; named, the stored syntax is served as stored."""
    baseline, extended = corpus["SC_rgb_jpeg.dcm"], corpus["JPEG-lossy.dcm"]
    for item in (baseline, extended):
        response = get(f"{root}{item.path}/frames/1", "multipart/related; type=image/jpeg")
        [(headers, _body)] = parse_multipart(response)
        assert media_params(headers["content-type"]) == (
            "image/jpeg", {"transfer-syntax": "1.2.840.10008.1.2.4.70"})
    assert _frames(get(f"{root}{baseline.path}/frames/1", "multipart/related; type=image/jpeg; "
                                                          "transfer-syntax=1.2.840.10008.1.2.4.50"
                       )) == [baseline.frames()[0]]


@pytest.mark.parametrize("accept", [None, "*/*", f"multipart/related; type={OCTET}",
                                    f"multipart/related; type={OCTET}; transfer-syntax=*"])
def test_big_endian_frames_leave_little_endian(corpus: dict[str, Stored], root: str,
                                               accept: str | None) -> None:
    """PS3.18 8.7.3 keeps big endian off the web: even as stored, frames of a big endian
    instance go out little endian, labelled Explicit VR Little Endian."""
    item = corpus["MR_small_bigendian.dcm"]
    response = get(f"{root}{item.path}/frames/1", accept)
    assert response.status_code == 200
    assert "transfer-syntax=1.2.840.10008.1.2.1" in response.headers["content-type"]
    assert _frames(response) == [item.ds.pixel_array.astype("<i2").tobytes()]
    assert item.frames()[0] != _frames(response)[0]


@pytest.mark.parametrize(("frames", "fragment"), [
    ("0", "'0'"), ("abc", "'abc'"), ("1,x", "'x'"), ("-1", "'-1'"), ("1,,2", "''"),
    ("1.5", "'1.5'"), ("16", "frame 16 does not exist"), ("1,16", "frame 16 does not exist"),
    ("99999999999999999999", "does not exist"),
])
def test_bad_frame_numbers_are_400(corpus: dict[str, Stored], root: str, frames: str,
                                   fragment: str) -> None:
    url = f"{root}{corpus['rtdose.dcm'].path}/frames/{frames}"
    assert_error(get(url, f"multipart/related; type={OCTET}; transfer-syntax=*"), 400, fragment)


@pytest.mark.parametrize("name", ["rtplan.dcm", "waveform_ecg.dcm"])
def test_frames_of_an_instance_without_pixel_data_are_400(corpus: dict[str, Stored], root: str,
                                                          name: str) -> None:
    assert_error(get(f"{root}{corpus[name].path}/frames/1", "*/*"), 400, "pixel data")


# -- Bulk data ---------------------------------------------------------------------------------


def _bulk_uris(metadata: dict[str, Any], ds: pydicom.Dataset) -> list[tuple[str, bytes]]:
    found = []
    for key, element in metadata.items():
        if "BulkDataURI" in element:
            value = bytes(ds[int(key, 16)].value)
            if ds.original_encoding[1] is False:  # big endian goes out little endian
                size = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}.get(element["vr"], 1)
                value = np.frombuffer(value, f">u{size}").astype(f"<u{size}").tobytes()
            found.append((element["BulkDataURI"], value))
        if element.get("vr") == "SQ":
            for i, item in enumerate(element.get("Value", [])):
                found.extend(_bulk_uris(item, ds[int(key, 16)].value[i]))
    return found


@pytest.mark.parametrize("name", ["CT_small.dcm", "waveform_ecg.dcm", "MR_small_bigendian.dcm",
                                  "rtdose.dcm"])
def test_every_bulk_data_uri_in_every_form(corpus: dict[str, Stored], root: str,
                                           name: str) -> None:
    item = corpus[name]
    [metadata] = get(f"{root}{item.path}/metadata").json()
    uris = _bulk_uris(metadata, item.ds)
    assert uris
    for uri, expected in uris:
        assert uri.startswith(f"{root}{item.path}/bulkdata/")
        for accept in (None, "*/*", f'multipart/related; type="{OCTET}"',
                       f"multipart/related; type={OCTET}; transfer-syntax=*"):
            response = get(uri, accept)
            assert response.status_code == 200, (uri, accept, response.text)
            [(headers, body)] = parse_multipart(response)
            assert body == expected
            assert headers["content-type"].startswith(OCTET)
            assert BIG_ENDIAN not in headers["content-type"]
        single = get(uri, f"{OCTET}; transfer-syntax=*")
        assert single.status_code == 200
        assert single.content == expected
        assert single.headers["content-type"].startswith(OCTET)


def test_nested_bulk_data_path_and_case(corpus: dict[str, Stored], root: str) -> None:
    item = corpus["waveform_ecg.dcm"]
    expected = bytes(item.ds.WaveformSequence[0].WaveformData)
    for path in ("54000100/0/54001010", "54000100/0/54001010/", "54000100/0/54001010".lower()):
        response = get(f"{root}{item.path}/bulkdata/{path}", f"{OCTET}; transfer-syntax=*")
        assert response.status_code == 200, (path, response.text)
        assert response.content == expected


@pytest.mark.parametrize("path", ["00100010", "54000100/2/54001010", "54000100/0/54001011",
                                  "zzzz", "7FE00010/0", "00431028/0/00431028"])
def test_unknown_bulk_data_paths_are_404(corpus: dict[str, Stored], root: str,
                                         path: str) -> None:
    url = f"{root}{corpus['waveform_ecg.dcm'].path}/bulkdata/{path}"
    assert_error(get(url, f"{OCTET}; transfer-syntax=*"), 404)


def test_pixel_data_bulk_of_a_compressed_instance(corpus: dict[str, Stored], root: str) -> None:
    item = corpus["JPEG2000.dcm"]
    url = f"{root}{item.path}/bulkdata/7FE00010"
    assert get(url, f"{OCTET}; transfer-syntax=*").content == item.ds.PixelData
    assert get(url, f"{OCTET}; transfer-syntax={item.ts}").content == item.ds.PixelData
    assert_error(get(url, OCTET), 406)
    assert_error(get(url, f"multipart/related; type={OCTET}; transfer-syntax={EXPLICIT_LE}"),
                 406)


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-9", 0, 9), ("bytes=10-19", 10, 19), ("bytes=100-", 100, None),
    ("bytes=-16", -16, None), ("bytes=0-0", 0, 0), ("bytes=5-999999999", 5, None),
])
def test_byte_ranges(corpus: dict[str, Stored], root: str, header: str, start: int,
                     end: int | None) -> None:
    item = corpus["CT_small.dcm"]
    url = f"{root}{item.path}/bulkdata/7FE00010"
    whole = item.ds.PixelData
    first = start if start >= 0 else len(whole) + start
    last = len(whole) - 1 if end is None else end
    expected = whole[first:last + 1]
    single = get(url, f"{OCTET}; transfer-syntax=*", Range=header)
    assert single.status_code == 206, single.text
    assert single.content == expected
    assert single.headers["content-range"] == f"bytes {first}-{last}/{len(whole)}"
    multi = get(url, f'multipart/related; type="{OCTET}"', Range=header)
    assert multi.status_code == 206
    [(headers, body)] = parse_multipart(multi)
    assert body == expected
    assert headers["content-range"] == f"bytes {first}-{last}/{len(whole)}"


@pytest.mark.parametrize("header", ["bytes=999999999-", "bytes=20-10", "bytes=-0"])
def test_unsatisfiable_ranges_are_416(corpus: dict[str, Stored], root: str, header: str) -> None:
    url = f"{root}{corpus['CT_small.dcm'].path}/bulkdata/7FE00010"
    response = get(url, f"{OCTET}; transfer-syntax=*", Range=header)
    assert_error(response, 416, "range")


@pytest.mark.parametrize("header", ["items=0-5", "bytes=0-1,4-5", "bytes=a-b", "bytes"])
def test_other_range_forms_return_everything(corpus: dict[str, Stored], root: str,
                                             header: str) -> None:
    item = corpus["CT_small.dcm"]
    response = get(f"{root}{item.path}/bulkdata/7FE00010", f"{OCTET}; transfer-syntax=*",
                   Range=header)
    assert response.status_code == 200
    assert response.content == item.ds.PixelData


# -- Absolute URLs behind a proxy --------------------------------------------------------------

PROXY = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "pacs.example.org",
         "X-Forwarded-Prefix": "/archive"}


def _proxied(root: str, shared_server: LiveServer) -> str:
    return "https://pacs.example.org/archive" + root[len(shared_server.base):]


def test_urls_are_absolute_and_follow_the_proxy(corpus: dict[str, Stored], root: str,
                                                shared_server: LiveServer) -> None:
    item = corpus["waveform_ecg.dcm"]
    outside = _proxied(root, shared_server)
    [metadata] = get(f"{root}{item.path}/metadata", **PROXY).json()
    uris = [uri for uri, _value in _bulk_uris(metadata, item.ds)]
    assert uris and all(u.startswith(f"{outside}{item.path}/bulkdata/") for u in uris)
    [direct] = get(f"{root}{item.path}/metadata").json()
    assert all(u.startswith(f"{root}{item.path}/bulkdata/")
               for u, _v in _bulk_uris(direct, item.ds))
    found = requests.get(f"{root}/studies", params={"StudyInstanceUID":
                                                    item.ds.StudyInstanceUID},
                         headers=PROXY).json()
    assert found[0]["00081190"]["Value"] == [f"{outside}/studies/{item.ds.StudyInstanceUID}"]
    instances = requests.get(f"{root}/instances", params={"SOPInstanceUID":
                                                          item.ds.SOPInstanceUID},
                             headers=PROXY).json()
    assert instances[0]["00081190"]["Value"] == [outside + item.path]
    retrieved = get(root + item.path, f"multipart/related; type={DICOM}; transfer-syntax=*",
                    **PROXY)
    assert parse_multipart(retrieved)[0][0]["content-location"] == outside + item.path
    restored = requests.post(f"{root}/studies", data=item.data, headers={
        "Content-Type": DICOM, "Accept": "application/dicom+json", **PROXY})
    assert restored.status_code == 200  # byte-identical again: idempotent
    body = restored.json()
    assert body["00081190"]["Value"] == [f"{outside}/studies/{item.ds.StudyInstanceUID}"]
    assert body["00081199"]["Value"][0]["00081190"]["Value"] == [outside + item.path]


@pytest.mark.parametrize(("headers", "prefix"), [
    ({"X-Forwarded-Proto": "https"}, "https://127.0.0.1:{port}"),
    ({"X-Forwarded-Host": "proxy.example:8443"}, "http://proxy.example:8443"),
    ({"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "a.example, b.example"},
     "https://a.example"),
    ({"X-Forwarded-Prefix": "/p/"}, "http://127.0.0.1:{port}/p"),
])
def test_each_forwarded_header_alone(corpus: dict[str, Stored], shared_server: LiveServer,
                                     headers: dict[str, str], prefix: str) -> None:
    item = corpus["CT_small.dcm"]
    port = shared_server.base.rsplit(":", 1)[1]
    [metadata] = get(f"{shared_server.dicomweb}{item.path}/metadata", **headers).json()
    expected = f"{prefix.format(port=port)}/dicomweb{item.path}/bulkdata/7FE00010"
    assert metadata["7FE00010"]["BulkDataURI"] == expected


def test_urls_when_a_dataset_and_store_are_named_dicomweb(tmp_path: Path) -> None:
    """The root is where the routes are mounted, not the first `dicomWeb` in the path."""
    item = corpus_files()["CT_small.dcm"]
    ds = pydicom.dcmread(BytesIO(item))
    name = "projects/dicomweb/locations/l/datasets/dicomWeb/dicomStores/dicomWeb"
    with run_server(tmp_path / "data", stores=(name,)) as running:
        root = f"http://127.0.0.1:{running.port}/v1/{name}/dicomWeb"
        stored = requests.post(f"{root}/studies", data=item, headers={
            "Content-Type": DICOM, "Accept": "application/dicom+json"})
        assert stored.status_code == 200, stored.text
        assert stored.json()["00081190"]["Value"] == [f"{root}/studies/{ds.StudyInstanceUID}"]
        [found] = requests.get(f"{root}/studies").json()
        assert found["00081190"]["Value"] == [f"{root}/studies/{ds.StudyInstanceUID}"]
        path = (f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                f"/instances/{ds.SOPInstanceUID}")
        [metadata] = requests.get(f"{root}{path}/metadata").json()
        uri = metadata["7FE00010"]["BulkDataURI"]
        assert uri == f"{root}{path}/bulkdata/7FE00010"
        assert requests.get(uri, headers={"Accept": f"{OCTET}; transfer-syntax=*"}).content \
            == ds.PixelData
        assert requests.get(f"http://127.0.0.1:{running.port}/dicomweb/studies").status_code \
            == 204  # the default store is another store


@pytest.mark.parametrize(("method", "suffix", "accept", "status"), [
    ("PUT", "/studies", None, 405),
    ("PATCH", "{instance}", None, 405),
    ("POST", "{instance}", None, 405),
    ("DELETE", "/studies", None, 405),
    ("GET", "/nothing", None, 404),
    ("GET", "{instance}/bulkdata/", None, 404),
    ("GET", "{instance}", "garbage", 406),
    ("GET", "{instance}", ";;;", 406),
    ("GET", "{instance}", "multipart/related; type=", 406),
    ("GET", "{instance}", 'multipart/related; type="application/dicom', 406),
    ("GET", "{instance}", "application/dicom; q=abc", 406),
    ("GET", "{instance}/frames/" + ",".join(["1"] * 10_001), None, 400),
])
def test_odd_requests_get_json_errors_never_500(corpus: dict[str, Stored], root: str,
                                                method: str, suffix: str, accept: str | None,
                                                status: int) -> None:
    url = root + suffix.format(instance=corpus["CT_small.dcm"].path)
    if "/v1beta1/" in root and method == "PUT":
        status = 415  # v1beta1 has the upsert: a PUT without a body type is refused for that
    response = requests.request(method, url, headers={"Accept": accept} if accept else {})
    assert_error(response, status)


def test_unknown_top_level_paths_are_404(shared_server: LiveServer) -> None:
    for path in ("/", "/v1/projects/x", "/dicomWeb/studies", "/v1/projects/local/dicomWeb"):
        assert_error(requests.get(shared_server.base + path), 404)


# -- Health and CORS ---------------------------------------------------------------------------


def test_healthz(shared_server: LiveServer) -> None:
    response = requests.get(f"{shared_server.base}/healthz")
    assert response.status_code == 200


@pytest.mark.parametrize("suffix", ["/studies", "/studies/1.2.3", "/studies/1.2.abc"])
def test_cors_headers_on_answers_and_errors(corpus: dict[str, Stored], root: str,
                                            suffix: str) -> None:
    response = get(root + suffix, "*/*", Origin="https://viewer.example")
    assert response.status_code in (200, 400, 404)
    assert response.headers["access-control-allow-origin"] in ("*", "https://viewer.example")
    assert "access-control-allow-origin" not in get(root + suffix, "*/*").headers


def test_cors_preflight(corpus: dict[str, Stored], root: str) -> None:
    response = requests.options(f"{root}/studies", headers={
        "Origin": "https://viewer.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, authorization"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "https://viewer.example")
    assert "POST" in response.headers["access-control-allow-methods"]
    exposed = get(f"{root}/studies", "*/*", Origin="https://viewer.example")
    assert "warning" in exposed.headers.get("access-control-expose-headers", "").lower()
