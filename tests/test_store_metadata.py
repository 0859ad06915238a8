"""STOW-RS from metadata and bulk data (PS3.18 10.5.1.2.2-3): DICOM JSON or XML metadata plus
JPEG / octet-stream parts, through Google's curl recipe (seed 002), a corrected version of the
quick-start guide's XML example (seed 004), and every kind of bad input."""

import json
import shutil
import subprocess
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import requests
from PIL import Image
from pydicom.pixels import pixel_array
from pydicom.uid import generate_uid

from tests.conftest import LiveServer
from tests.multipart_parts import media_params, parse_multipart

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
BOUNDARY = "DICOMwebBoundary"
CANNOT_UNDERSTAND = 0xC000
DATA_SET_DOES_NOT_MATCH = 0xA900
JSON_TYPE = f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}'
XML_TYPE = f'multipart/related; type="application/dicom+xml"; boundary={BOUNDARY}'


def photo(width: int = 160, height: int = 120, mode: str = "RGB") -> bytes:
    """A JPEG made by Pillow: smooth gradients, so it compresses like a photograph."""
    yy, xx = np.mgrid[:height, :width]
    rgb = np.stack([(xx * 255 // width), (yy * 255 // height), ((xx + yy) % 256)], -1)
    image = Image.fromarray(rgb.astype(np.uint8)).convert(mode)
    out = BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()


def uid_set() -> dict[str, str]:
    return {"study": generate_uid(), "series": generate_uid(), "sop": generate_uid()}


def json_instance(uids: dict[str, str], rows: int = 120, columns: int = 160,
                  samples: int = 3, photometric: str = "YBR_FULL_422",
                  syntax: str = JPEG_BASELINE, bits: int = 8,
                  location: str | None = "jpeg-image", **extra: Any) -> dict[str, Any]:
    """Google's template (seed 002) with real values, plus a Patient and Study module."""
    instance: dict[str, Any] = {
        "00020010": {"vr": "UI", "Value": [syntax]},
        "00080005": {"vr": "CS", "Value": ["ISO_IR 192"]},
        "00080016": {"vr": "UI", "Value": [SECONDARY_CAPTURE]},
        "00080018": {"vr": "UI", "Value": [uids["sop"]]},
        "0020000D": {"vr": "UI", "Value": [uids["study"]]},
        "0020000E": {"vr": "UI", "Value": [uids["series"]]},
        "00280002": {"vr": "US", "Value": [samples]},
        "00280004": {"vr": "CS", "Value": [photometric]},
        "00280008": {"vr": "IS", "Value": [1]},
        "00280010": {"vr": "US", "Value": [rows]},
        "00280011": {"vr": "US", "Value": [columns]},
        "00280100": {"vr": "US", "Value": [bits]},
        "00280101": {"vr": "US", "Value": [bits]},
        "00280102": {"vr": "US", "Value": [bits - 1]},
        "00280103": {"vr": "US", "Value": [0]},
    }
    if samples > 1:
        instance["00280006"] = {"vr": "US", "Value": [0]}
    if location is not None:
        instance["7FE00010"] = {"vr": "OB", "BulkDataURI": location}
    instance.update(extra)
    return instance


def body(metadata: list[bytes], bulk: list[tuple[str | None, str, bytes]],
         metadata_type: str = "application/dicom+json") -> bytes:
    """A multipart body: the metadata parts, then (Content-Location, Content-Type, bytes)."""
    parts = [f"--{BOUNDARY}\r\nContent-Type: {metadata_type}\r\n\r\n".encode() + m
             for m in metadata]
    for location, ctype, data in bulk:
        where = f"Content-Location: {location}\r\n" if location is not None else ""
        parts.append(f"--{BOUNDARY}\r\n{where}Content-Type: {ctype}\r\n\r\n".encode() + data)
    return b"\r\n".join(parts) + f"\r\n--{BOUNDARY}--".encode()


def stow(server: LiveServer, data: bytes, ctype: str = JSON_TYPE,
         accept: str = "application/dicom+json", study: str | None = None) -> requests.Response:
    url = f"{server.dicomweb}/studies" + (f"/{study}" if study else "")
    return requests.post(url, data=data, headers={"Content-Type": ctype, "Accept": accept})


def failures(response: requests.Response) -> list[tuple[int, str]]:
    items = response.json().get("00081198", {}).get("Value", [])
    return [(item["00081197"]["Value"][0], item["00091097"]["Value"][0]) for item in items]


def stored(response: requests.Response) -> list[str]:
    items = response.json().get("00081199", {}).get("Value", [])
    return [item["00081155"]["Value"][0] for item in items]


def instance_url(server: LiveServer, uids: dict[str, str]) -> str:
    return (f"{server.dicomweb}/studies/{uids['study']}/series/{uids['series']}"
            f"/instances/{uids['sop']}")


def retrieve(server: LiveServer, uids: dict[str, str]) -> pydicom.Dataset:
    response = requests.get(instance_url(server, uids),
                            headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert response.status_code == 200, response.text
    return pydicom.dcmread(BytesIO(response.content))


@pytest.fixture(scope="module")
def server(shared_server: LiveServer) -> Iterator[LiveServer]:
    yield shared_server


# -- Google's recipe, as written in seed 002 ---------------------------------------------------


def test_googles_curl_recipe_as_written(server: LiveServer, tmp_path: Path) -> None:
    """opening/middle/closing boundary files, cat, and curl --data-binary (seed 002)."""
    uids = uid_set()
    jpeg = photo()
    (tmp_path / "image.jpg").write_bytes(jpeg)
    (tmp_path / "instance.json").write_text(json.dumps([json_instance(uids)], indent=1))
    (tmp_path / "opening.file").write_bytes(
        b"--DICOMwebBoundary\r\nContent-Type: application/dicom+json\r\n\r\n")
    (tmp_path / "middle.file").write_bytes(
        b"\r\n--DICOMwebBoundary\r\nContent-Location: jpeg-image\r\nContent-Type: image/jpeg; "
        b"transfer-syntax=1.2.840.10008.1.2.4.50\r\n\r\n")
    (tmp_path / "closing.file").write_bytes(b"\r\n--DICOMwebBoundary--")
    request = b"".join((tmp_path / name).read_bytes() for name in (
        "opening.file", "instance.json", "middle.file", "image.jpg", "closing.file"))
    (tmp_path / "multipart-request.file").write_bytes(request)
    curl = shutil.which("curl")
    assert curl is not None
    url = server.google(version="v1beta1") + "/studies"
    run = subprocess.run(
        [curl, "-sS", "-X", "POST", "-H", 'Content-Type: multipart/related; '
         'type="application/dicom+json"; boundary=DICOMwebBoundary', url,
         "--data-binary", "@multipart-request.file", "-w", "\n%{http_code}"],
        cwd=tmp_path, capture_output=True, timeout=60, check=True)
    answer, _, status = run.stdout.rpartition(b"\n")
    assert status == b"200", answer
    # XML by default, as Google answers, in the PS3.19 namespace on a full store
    assert answer.startswith(b'<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/')
    assert uids["sop"].encode() in answer

    ds = retrieve(server, uids)
    assert ds.file_meta.TransferSyntaxUID == JPEG_BASELINE
    assert ds.file_meta.MediaStorageSOPInstanceUID == uids["sop"]
    assert ds.file_meta.MediaStorageSOPClassUID == SECONDARY_CAPTURE
    # the JPEG is kept bit for bit as the one fragment of the one frame
    frames = requests.get(f"{instance_url(server, uids)}/frames/1",
                          headers={"Accept": "multipart/related; type=image/jpeg; "
                                             f"transfer-syntax={JPEG_BASELINE}"})
    [(headers, frame)] = parse_multipart(frames)
    assert media_params(headers["content-type"])[0] == "image/jpeg"
    assert frame.rstrip(b"\0") == jpeg.rstrip(b"\0")
    # pydicom decodes what Pillow decodes: the same YCbCr samples, without colour conversion
    expected = Image.open(BytesIO(jpeg))
    expected.draft("YCbCr", expected.size)
    got = pixel_array(ds, decoding_plugin="pillow", as_rgb=False)
    assert np.array_equal(got, np.asarray(expected))
    # and pydicom's default decoder agrees within the rounding of another JPEG decoder
    rgb = np.asarray(Image.open(BytesIO(jpeg)).convert("RGB"), float)
    assert np.abs(ds.pixel_array.astype(float) - rgb).mean() < 1.5
    rendered = requests.get(f"{instance_url(server, uids)}/rendered",
                            headers={"Accept": "image/png"})
    assert Image.open(BytesIO(rendered.content)).size == (160, 120)


# -- other forms -------------------------------------------------------------------------------


def seed_004_xml(uids: dict[str, str], location: str) -> bytes:
    """The quick-start guide's XML example (seed 004), corrected: matching </Value> tags,
    PS3.19 attribute names and PersonName groups, the SOP Class and Transfer Syntax it lacked,
    a BulkData uri for the pixels, and the Image Pixel module of the JPEG it sends."""
    values = [("00020010", "UI", JPEG_BASELINE), ("00080005", "CS", "ISO_IR 192"),
              ("00080016", "UI", SECONDARY_CAPTURE), ("00080018", "UI", uids["sop"]),
              ("00080020", "DA", "20130409"), ("00080030", "TM", "131600.0000"),
              ("00080050", "SH", "98765"), ("00080060", "CS", "XC"),
              ("00100020", "LO", "12345"), ("00100030", "DA", "19670701"),
              ("00100040", "CS", "M"), ("00200010", "SH", "98765"),
              ("0020000D", "UI", uids["study"]), ("0020000E", "UI", uids["series"]),
              ("00280002", "US", "1"), ("00280004", "CS", "MONOCHROME2"),
              ("00280010", "US", "120"), ("00280011", "US", "160"), ("00280100", "US", "8"),
              ("00280101", "US", "8"), ("00280102", "US", "7"), ("00280103", "US", "0")]
    names = [("00080090", "SMITH", "KAREN"), ("00100010", "THOMPSON", "ALEX")]
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">']
    lines += [f'<DicomAttribute tag="{tag}" vr="{vr}"><Value number="1">{value}</Value>'
              "</DicomAttribute>" for tag, vr, value in values]
    lines += [f'<DicomAttribute tag="{tag}" vr="PN"><PersonName number="1"><Alphabetic>'
              f"<FamilyName>{family}</FamilyName><GivenName>{given}</GivenName>"
              "</Alphabetic></PersonName></DicomAttribute>" for tag, family, given in names]
    lines += [f'<DicomAttribute tag="7FE00010" vr="OB"><BulkData uri="{location}"/>'
              "</DicomAttribute>", "</NativeDicomModel>"]
    return "\n".join(lines).encode()


def test_corrected_seed_004_xml_with_a_jpeg(server: LiveServer) -> None:
    uids = uid_set()
    jpeg = photo(mode="L")
    response = stow(server, body([seed_004_xml(uids, "329800735")],
                                 [("329800735", "image/jpeg", jpeg)], "application/dicom+xml"),
                    XML_TYPE, study=uids["study"])
    assert response.status_code == 200, response.text
    ds = retrieve(server, uids)
    assert str(ds.PatientName) == "THOMPSON^ALEX"
    assert str(ds.ReferringPhysicianName) == "SMITH^KAREN"
    assert ds.StudyDate == "20130409" and ds.Modality == "XC"
    assert np.array_equal(pixel_array(ds, decoding_plugin="pillow"),
                          np.asarray(Image.open(BytesIO(jpeg))))
    # found by search like any other instance
    found = requests.get(f"{server.dicomweb}/studies", params={"PatientID": "12345"}).json()
    assert uids["study"] in {s["0020000D"]["Value"][0] for s in found}


def test_native_pixels_from_octet_stream_and_inline_binary(server: LiveServer) -> None:
    uids = uid_set()
    pixels = (np.arange(64 * 48, dtype=np.uint16) * 7 % 4096).reshape(48, 64)
    private = bytes(range(10))
    instance = json_instance(
        uids, rows=48, columns=64, samples=1, photometric="MONOCHROME2", syntax=EXPLICIT_LE,
        bits=16, location="pixels",
        **{"00291010": {"vr": "OB", "InlineBinary": "AAECAwQFBgcICQ=="},
           "00290010": {"vr": "LO", "Value": ["TEST CREATOR"]},
           "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Ünïcødé^Zoë"}]}})
    instance["00280101"] = {"vr": "US", "Value": [12]}
    instance["00280102"] = {"vr": "US", "Value": [11]}
    response = stow(server, body([json.dumps([instance]).encode()],
                                 [("pixels", "application/octet-stream", pixels.tobytes())]))
    assert response.status_code == 200, response.text
    ds = retrieve(server, uids)
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert np.array_equal(ds.pixel_array, pixels)
    assert ds[0x00291010].value == private
    assert str(ds.PatientName) == "Ünïcødé^Zoë"


def test_a_first_part_without_content_type_is_the_metadata(server: LiveServer) -> None:
    """The request's type names the metadata part when the part itself does not."""
    uids = uid_set()
    data = body([_json(json_instance(uids))], [("jpeg-image", "image/jpeg", photo())])
    data = data.replace(b"Content-Type: application/dicom+json\r\n", b"", 1)
    response = stow(server, data)
    assert response.status_code == 200, response.text
    assert stored(response) == [uids["sop"]]


def test_several_instances_and_a_json_response(server: LiveServer) -> None:
    jpeg = photo()
    first, second = uid_set(), uid_set()
    metadata = json.dumps([json_instance(first, location="a"),
                                         json_instance(second, location="b")]).encode()
    response = stow(server, body([metadata], [("a", "image/jpeg", jpeg),
                                              ("b", f"image/jpeg; transfer-syntax={JPEG_BASELINE}",
                                               jpeg)]))
    assert response.status_code == 200, response.text
    assert sorted(stored(response)) == sorted([first["sop"], second["sop"]])


# -- failures: each fails alone, with a readable reason ----------------------------------------


def _json(*instances: dict[str, Any]) -> bytes:
    return json.dumps(list(instances)).encode()


BAD_CASES: dict[str, tuple[Any, int, str]] = {
    # name: (function of (uids, jpeg) -> (metadata parts, bulk parts, metadata type), reason,
    #        a fragment of the detail)
    "rows_differ_from_the_jpeg": (
        lambda u, j: ([_json(json_instance(u, rows=100))], [("jpeg-image", "image/jpeg", j)]),
        DATA_SET_DOES_NOT_MATCH, "does not match the Image Pixel module"),
    "wrong_samples_per_pixel": (
        lambda u, j: ([_json(json_instance(u, samples=1, photometric="MONOCHROME2"))],
                      [("jpeg-image", "image/jpeg", j)]),
        DATA_SET_DOES_NOT_MATCH, "Image Pixel module"),
    "bulk_media_type_of_another_syntax": (
        lambda u, j: ([_json(json_instance(u))], [("jpeg-image", "image/jp2", j)]),
        DATA_SET_DOES_NOT_MATCH, "image/jp2"),
    "bulk_transfer_syntax_differs": (
        lambda u, j: ([_json(json_instance(u))],
                      [("jpeg-image", "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.70", j)]),
        DATA_SET_DOES_NOT_MATCH, "transfer-syntax=1.2.840.10008.1.2.4.70"),
    "missing_bulk_part": (
        lambda u, j: ([_json(json_instance(u))], []),
        DATA_SET_DOES_NOT_MATCH, "no part has that Content-Location"),
    "duplicate_bulk_parts": (
        lambda u, j: ([_json(json_instance(u))], [("jpeg-image", "image/jpeg", j)] * 2),
        DATA_SET_DOES_NOT_MATCH, "several bulk data parts"),
    "pixel_data_inline": (
        lambda u, j: ([_json(json_instance(u, location=None, **{
            "7FE00010": {"vr": "OB", "InlineBinary": "AAAA"}}))], []),
        CANNOT_UNDERSTAND, "InlineBinary"),
    "missing_sop_instance_uid": (
        lambda u, j: ([_json({k: v for k, v in json_instance(u).items() if k != "00080018"})],
                      [("jpeg-image", "image/jpeg", j)]),
        CANNOT_UNDERSTAND, "SOPInstanceUID"),
    "invalid_study_uid": (
        lambda u, j: ([_json(json_instance({**u, "study": "1.2.abc"}))],
                      [("jpeg-image", "image/jpeg", j)]),
        CANNOT_UNDERSTAND, "StudyInstanceUID"),
    "missing_transfer_syntax": (
        lambda u, j: ([_json({k: v for k, v in json_instance(u).items() if k != "00020010"})],
                      [("jpeg-image", "image/jpeg", j)]),
        CANNOT_UNDERSTAND, "TransferSyntaxUID"),
    "big_endian_syntax": (
        lambda u, j: ([_json(json_instance(u, syntax="1.2.840.10008.1.2.2"))],
                      [("jpeg-image", "application/octet-stream", j)]),
        CANNOT_UNDERSTAND, "cannot be built"),
    "non_ascii_without_utf8": (
        lambda u, j: ([_json(json_instance(u, **{
            "00080005": {"vr": "CS", "Value": ["ISO_IR 100"]},
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Zoë"}]}}))],
                      [("jpeg-image", "image/jpeg", j)]),
        CANNOT_UNDERSTAND, "ISO_IR 192"),
    "bulk_data_uri_on_a_text_vr": (
        lambda u, j: ([_json(json_instance(u, **{
            "00081030": {"vr": "LO", "BulkDataURI": "jpeg-image"}}))],
                      [("jpeg-image", "image/jpeg", j)]),
        CANNOT_UNDERSTAND, "VR LO"),
    "native_pixels_of_the_wrong_length": (
        lambda u, j: ([_json(json_instance(u, syntax=EXPLICIT_LE, samples=1,
                                           photometric="MONOCHROME2", location="raw"))],
                      [("raw", "application/octet-stream", b"\0" * 100)]),
        DATA_SET_DOES_NOT_MATCH, "100 bytes"),
    "malformed_json": (
        lambda u, j: ([b'[{"00080018": {"vr": "UI", "Value": ["1.2"]}'], [("x", "image/jpeg", j)]),
        CANNOT_UNDERSTAND, "not valid JSON"),
    "seed_004_xml_as_published": (
        lambda u, j: ([seed_004_xml(u, "x").replace(b"</Value>", b"</value>", 1)],
                      [("x", "image/jpeg", j)], "application/dicom+xml"),
        CANNOT_UNDERSTAND, "not well-formed"),
}


UNREADABLE_METADATA = {"malformed_json", "seed_004_xml_as_published"}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_a_bad_instance_fails_alone(server: LiveServer, case: str) -> None:
    make, reason, fragment = BAD_CASES[case]
    bad, good = uid_set(), uid_set()
    metadata, bulk, *kind = make(bad, photo())
    metadata_type = kind[0] if kind else "application/dicom+json"
    jpeg = photo(mode="RGB" if metadata_type == "application/dicom+json" else "L")
    # a good instance in its own JSON part, with its own bulk part
    good_part = _json(json_instance(good, location="good-image"))
    parts = [*metadata, good_part] if metadata_type == "application/dicom+json" else metadata
    data = body(parts, [*bulk, ("good-image", "image/jpeg", jpeg)], metadata_type)
    if metadata_type != "application/dicom+json":  # an XML request carries the good one too
        data = data.replace(f"--{BOUNDARY}--".encode(), (
            f"--{BOUNDARY}\r\nContent-Type: application/dicom+xml\r\n\r\n".encode()
            + seed_004_xml(good, "good-image") + f"\r\n--{BOUNDARY}--".encode()))
    ctype = JSON_TYPE if metadata_type == "application/dicom+json" else XML_TYPE
    response = stow(server, data, ctype)
    assert response.status_code == 202, response.text
    assert stored(response) == [good["sop"]]
    [(code, detail), *rest] = failures(response)
    if case in UNREADABLE_METADATA:  # what its bulk part belonged to cannot be known
        assert [d for _, d in rest] == ["the bulk data part at Content-Location 'x' is "
                                        "referenced by no instance's BulkDataURI"]
    else:
        assert not rest, rest
    assert code == reason, detail
    assert fragment in detail, detail
    missing = requests.get(instance_url(server, bad), headers={"Accept": "*/*"})
    assert missing.status_code == 404
    assert retrieve(server, good).SOPInstanceUID == good["sop"]


def test_unreferenced_and_unnamed_bulk_parts_are_reported(server: LiveServer) -> None:
    uids = uid_set()
    jpeg = photo()
    response = stow(server, body([_json(json_instance(uids))],
                                 [("jpeg-image", "image/jpeg", jpeg),
                                  ("stray", "application/octet-stream", b"1234"),
                                  (None, "application/octet-stream", b"5678")]))
    assert response.status_code == 202, response.text
    assert stored(response) == [uids["sop"]]
    details = [detail for _, detail in failures(response)]
    assert any("'stray'" in d and "referenced by no" in d for d in details), details
    assert any("no Content-Location" in d for d in details), details


def test_study_in_the_url_must_match(server: LiveServer) -> None:
    uids = uid_set()
    response = stow(server, body([_json(json_instance(uids))],
                                 [("jpeg-image", "image/jpeg", photo())]), study=generate_uid())
    assert response.status_code == 409
    [(code, detail)] = failures(response)
    assert code == DATA_SET_DOES_NOT_MATCH and "differs from the study" in detail


def test_nothing_but_bulk_data_is_400(server: LiveServer) -> None:
    response = stow(server, body([], [("a", "application/octet-stream", b"12")]))
    assert response.status_code == 400
    assert "metadata" in response.json()["error"]["message"]


def test_built_instance_passes_dciodvfy(server: LiveServer, tmp_path: Path) -> None:
    """The modules the server writes (File Meta, Image Pixel encapsulation) are valid; with
    Google's bare template dciodvfy reports only the Type 2 attributes of modules the client
    chose not to send (the server invents nothing)."""
    dciodvfy = shutil.which("dciodvfy")
    if dciodvfy is None:
        pytest.skip("dciodvfy (Debian dicom3tools) is not installed; .ci/run installs it")
    uids = uid_set()
    response = stow(server, body([seed_004_xml(uids, "img")],
                                 [("img", "image/jpeg", photo(mode="L"))],
                                 "application/dicom+xml"), XML_TYPE)
    assert response.status_code == 200, response.text
    path = tmp_path / "built.dcm"
    path.write_bytes(requests.get(instance_url(server, uids), headers={
        "Accept": "application/dicom; transfer-syntax=*"}).content)
    report = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, timeout=60)
    errors = [line for line in report.stderr.splitlines() if line.startswith("Error")]
    written = ("ImagePixel", "SOPCommon", "MetaInformation", "Transfer Syntax", "PixelData")
    assert not [e for e in errors if any(w in e for w in written)], errors
    # what is left is the client's to send (e.g. Type 2 attributes of its SC modules)
    assert all("Missing attribute" in e for e in errors), errors


def _nested_metadata(depth: int, media_type: str) -> tuple[bytes, str]:
    """A STOW body of one instance's metadata whose ContentSequence items nest `depth` deep."""
    uids = {"00020010": "1.2.840.10008.1.2.1", "00080016": "1.2.840.10008.5.1.4.1.1.7",
            "00080018": generate_uid(), "0020000D": generate_uid(), "0020000E": generate_uid()}
    if media_type == "application/dicom+json":
        text = '{"00080100": {"vr": "SH", "Value": ["LEAF"]}}'
        for _ in range(depth):
            text = '{"0040A730": {"vr": "SQ", "Value": [' + text + "]}}"
        tops = "".join(f', "{tag}": {{"vr": "UI", "Value": ["{uid}"]}}'
                       for tag, uid in uids.items())
        document = f"[{text[:-1]}{tops}}}]"
    else:
        text = ('<DicomAttribute tag="00080100" vr="SH"><Value number="1">LEAF</Value>'
                "</DicomAttribute>")
        for _ in range(depth):
            text = (f'<DicomAttribute tag="0040A730" vr="SQ"><Item number="1">{text}</Item>'
                    "</DicomAttribute>")
        tops = "".join(f'<DicomAttribute tag="{tag}" vr="UI"><Value number="1">{uid}</Value>'
                       "</DicomAttribute>" for tag, uid in uids.items())
        document = f'<?xml version="1.0"?><NativeDicomModel>{text}{tops}</NativeDicomModel>'
    boundary = "nested-boundary"
    body = (f"--{boundary}\r\nContent-Type: {media_type}\r\n\r\n{document}\r\n"
            f"--{boundary}--\r\n").encode()
    return body, f'multipart/related; type="{media_type}"; boundary={boundary}'


@pytest.mark.parametrize(("media_type", "depth"), [
    ("application/dicom+json", 51), ("application/dicom+json", 300),
    ("application/dicom+xml", 51), ("application/dicom+xml", 2000),
])
def test_metadata_nested_too_deep_cannot_be_understood(live_server: LiveServer,
                                                       media_type: str, depth: int) -> None:
    """Sequences past 50 levels are refused with the reason, however deep (the readers
    once recursed into a 500), and a depth of 50 is stored."""
    body, content_type = _nested_metadata(depth, media_type)
    headers = {"Content-Type": content_type, "Accept": "application/dicom+json"}
    response = requests.post(f"{live_server.dicomweb}/studies", data=body, headers=headers)
    assert response.status_code == 409, response.text
    [failure] = response.json()["00081198"]["Value"]
    assert failure["00081197"]["Value"] == [0xC000]
    assert "nested more than 50" in failure["00091097"]["Value"][0]
    body, content_type = _nested_metadata(50, media_type)
    stored = requests.post(f"{live_server.dicomweb}/studies", data=body,
                           headers={**headers, "Content-Type": content_type})
    assert stored.status_code == 200, stored.text
