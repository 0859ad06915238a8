"""Store (STOW-RS) bad input against a live server: every malformed request and every failing
part is answered with the right status and body, and never disturbs what is already stored.

After each request the archive is checked: every baseline instance retrieves byte-identical,
`staging/` is empty, and there is exactly one blob per indexed instance.
"""

import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import generate_uid

from tests.conftest import LiveServer, run_server
from tests.dataset_factories import corpus_bytes, ct_series, edited
from tests.multipart_parts import parse_multipart

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
BOUNDARY = "stow-boundary-4e1f"
CANNOT_UNDERSTAND = 0xC000
DATA_SET_DOES_NOT_MATCH = 0xA900
PROCESSING_FAILURE = 0x0110
OUT_OF_RESOURCES = 0xA700
UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


def multipart(parts: list[bytes], boundary: str = BOUNDARY, close: bool = True,
              part_type: str = DICOM) -> bytes:
    """A multipart/related body of `parts`; without `close`, the closing delimiter is cut."""
    head = f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode()
    body = b"".join(head + data + b"\r\n" for data in parts)
    return body + (f"--{boundary}--\r\n".encode() if close else b"")


def content_type(boundary: str = BOUNDARY) -> str:
    return f'multipart/related; type="{DICOM}"; boundary={boundary}'


def generated(count: int = 1, study_uid: str | None = None, **changes: object) -> list[bytes]:
    """`count` fresh 8x8 CT instances of one new series, with `changes` applied to each
    (None deletes the attribute)."""
    files = ct_series(count, size=8, patient="STOW^ERRORS", study_uid=study_uid)
    if not changes:
        return files
    return [edited(data, **changes) for data in files]


def uids(data: bytes) -> tuple[str, str, str]:
    ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


class Archive:
    """The shared server plus the instances stored before any bad input was sent."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.http = requests.Session()
        self.baseline: dict[str, bytes] = {}

    @property
    def studies(self) -> str:
        return f"{self.server.dicomweb}/studies"

    def post(self, body: bytes | Iterator[bytes], ctype: str | None, url: str | None = None,
             accept: str | None = DICOM_JSON) -> requests.Response:
        headers = {"Accept": accept} if accept else {}
        if ctype is not None:
            headers["Content-Type"] = ctype
        return self.http.post(url or self.studies, data=body, headers=headers)

    def instance_url(self, data: bytes) -> str:
        study, series, sop = uids(data)
        return f"{self.studies}/{study}/series/{series}/instances/{sop}"

    def retrieve(self, data: bytes) -> requests.Response:
        return self.http.get(self.instance_url(data),
                             headers={"Accept": f"{DICOM}; transfer-syntax=*"})

    def keep(self, files: list[bytes]) -> None:
        response = self.post(multipart(files), content_type())
        assert response.status_code == 200, response.text
        for data in files:
            self.baseline[self.instance_url(data)] = data

    def assert_stored(self, data: bytes) -> None:
        got = self.retrieve(data)
        assert got.status_code == 200, got.text
        assert got.content == data

    def assert_absent(self, data: bytes) -> None:
        assert self.retrieve(data).status_code == 404

    def indexed_instances(self) -> int:
        found = self.http.get(f"{self.server.dicomweb}/instances", params={"limit": 10_000})
        return 0 if found.status_code == 204 else len(found.json())

    def assert_intact(self) -> None:
        """Baseline byte-identical, no staging leftovers, one blob per indexed instance."""
        for url, data in self.baseline.items():
            got = self.http.get(url, headers={"Accept": f"{DICOM}; transfer-syntax=*"})
            assert got.status_code == 200, (url, got.text)
            assert got.content == data, url
        data_dir = self.server.data_dir
        assert list((data_dir / "staging").iterdir()) == []
        blobs = [p for p in (data_dir / "blobs").glob("*/*/*") if p.is_file()]
        assert len(blobs) == self.indexed_instances()


@pytest.fixture(scope="module")
def archive(shared_server: LiveServer) -> Archive:
    kept = Archive(shared_server)
    kept.keep([corpus_bytes("CT_small.dcm"), corpus_bytes("MR_small.dcm"), *generated(3)])
    kept.assert_intact()
    return kept


def assert_error(response: requests.Response, status: int, *fragments: str) -> dict[str, Any]:
    """A Google-style error body with `status`, whose message contains `fragments`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "status"}
    assert error["code"] == status
    assert isinstance(error["status"], str) and error["status"].isupper()
    for fragment in fragments:
        assert fragment in error["message"]
    return dict(error)


def failures(body: dict[str, Any]) -> list[dict[str, Any]]:
    """SOP Instance and Class UID, FailureReason and detail of each FailedSOPSequence item;
    checks the private detail element and its creator on the way."""
    out = []
    for item in body.get("00081198", {}).get("Value", []):
        assert item["00081197"]["vr"] == "US"
        assert item["00090010"] == {"vr": "LO", "Value": ["GOOGLE"]}
        assert item["00091097"]["vr"] == "LT"
        out.append({"sop": item.get("00081155", {}).get("Value", [""])[0],
                    "sop_class": item.get("00081150", {}).get("Value", [""])[0],
                    "reason": item["00081197"]["Value"][0],
                    "detail": item["00091097"]["Value"][0]})
    return out


def stored_sops(body: dict[str, Any]) -> list[str]:
    items = body.get("00081199", {}).get("Value", [])
    for item in items:
        assert item["00081190"]["Value"][0].startswith("http://")
    return [item["00081155"]["Value"][0] for item in items]


def stow_json(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(DICOM_JSON)
    body: dict[str, Any] = response.json()
    return body


# -- Request-level errors: 400 / 415, nothing stored -------------------------------------------


@pytest.mark.parametrize("ctype", [
    "text/plain",
    "application/json",
    "application/octet-stream",
    "image/jpeg",
    'multipart/related; type="application/pdf"; boundary=' + BOUNDARY,
    "multipart/form-data; boundary=" + BOUNDARY,
    "not a media type",
    "",
])
def test_unsupported_content_type_is_415(archive: Archive, ctype: str) -> None:
    data = generated()[0]
    response = archive.post(multipart([data]), ctype)
    assert_error(response, 415, "application/dicom")
    archive.assert_absent(data)
    archive.assert_intact()


def test_missing_content_type_is_415(archive: Archive) -> None:
    data = generated()[0]
    response = archive.post(data, None)
    assert_error(response, 415)
    archive.assert_absent(data)
    archive.assert_intact()


@pytest.mark.parametrize("ctype", [
    f'multipart/related; type="{DICOM}"',
    f"multipart/related; type={DICOM}",
    f'multipart/related; type="{DICOM}"; boundary=',
    f'multipart/related; type="{DICOM}"; boundary=""',
    "multipart/related",
])
def test_multipart_without_boundary_is_400(archive: Archive, ctype: str) -> None:
    data = generated()[0]
    assert_error(archive.post(multipart([data]), ctype), 400, "boundary")
    archive.assert_absent(data)
    archive.assert_intact()


@pytest.mark.parametrize("study", ["1.2.abc", "1..2", "1" * 65, "1.2.", "x"])
def test_invalid_study_uid_in_url_is_400(archive: Archive, study: str) -> None:
    data = generated()[0]
    response = archive.post(multipart([data]), content_type(), url=f"{archive.studies}/{study}")
    assert_error(response, 400, "UID")
    archive.assert_absent(data)
    archive.assert_intact()


def test_truncated_multipart_keeps_only_completed_parts(archive: Archive) -> None:
    """A body cut before its closing delimiter: 400 saying how many parts were stored; the parts
    a delimiter completed are kept whole, the cut one is not."""
    files = generated(3)
    response = archive.post(multipart(files, close=False), content_type())
    assert_error(response, 400, "closing boundary", "2 instance(s) completed before it",
                 *(uids(data)[2] for data in files[:2]))
    assert uids(files[2])[2] not in response.text
    for data in files[:2]:
        assert archive.retrieve(data).content == data
    archive.assert_absent(files[2])
    archive.assert_intact()


def test_multipart_cut_inside_a_part_keeps_no_piece_of_it(archive: Archive) -> None:
    files = generated(2)
    body = multipart(files)
    response = archive.post(body[:len(body) - len(files[1]) // 2], content_type())
    assert_error(response, 400, "1 instance(s) completed before it")
    assert archive.retrieve(files[0]).content == files[0]
    archive.assert_absent(files[1])
    archive.assert_intact()


@pytest.mark.parametrize("body", [
    b"garbage",
    b"\0" * 4096,
    b"--not-the-boundary\r\nContent-Type: application/dicom\r\n\r\nxx\r\n--not-the-boundary--",
    b"",
])
def test_multipart_body_without_the_boundary_is_400(archive: Archive, body: bytes) -> None:
    assert_error(archive.post(body, content_type()), 400)
    archive.assert_intact()


def test_multipart_with_only_the_closing_delimiter_is_400(archive: Archive) -> None:
    assert_error(archive.post(f"--{BOUNDARY}--\r\n".encode(), content_type()), 400,
                 "no DICOM instance")
    archive.assert_intact()


@pytest.mark.parametrize("boundary", ["x" * 71, "bad{boundary}", "ends-with-space "])
def test_invalid_boundary_is_400(archive: Archive, boundary: str) -> None:
    data = generated()[0]
    response = archive.post(multipart([data], boundary=boundary),
                            f'multipart/related; type="{DICOM}"; boundary="{boundary}"')
    assert_error(response, 400, "boundary")
    archive.assert_absent(data)
    archive.assert_intact()


def test_oversized_part_headers_are_400(archive: Archive) -> None:
    data = generated()[0]
    head = f"--{BOUNDARY}\r\nContent-Type: {DICOM}\r\nX-Padding: {'p' * 20_000}\r\n\r\n"
    body = head.encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()
    assert_error(archive.post(body, content_type()), 400, "header")
    archive.assert_absent(data)
    archive.assert_intact()


def test_empty_single_part_body_is_400(archive: Archive) -> None:
    assert_error(archive.post(b"", DICOM), 400)
    archive.assert_intact()


def test_instance_over_the_size_limit_is_413_and_leaves_nothing(tmp_path: Path) -> None:
    small, big = generated()[0], ct_series(1, size=64)[0]
    assert len(small) < 2000 < len(big)
    with run_server(tmp_path / "data", max_instance_bytes=2000) as running:
        server = LiveServer(f"http://127.0.0.1:{running.port}", tmp_path / "data")
        archive = Archive(server)
        archive.keep([small])
        for body, ctype in [(multipart([small, big]), content_type()), (big, DICOM)]:
            assert_error(archive.post(body, ctype), 413, "2000")
        archive.assert_absent(big)
        archive.assert_intact()


def test_parts_past_the_limit_are_not_read(tmp_path: Path) -> None:
    """More parts than `max_parts_per_request`: the first ones are stored and listed, and one
    Out of Resources failure stands for the rest, which are neither read nor stored (a large
    one included: the answer comes while the client is still sending). A metadata body, built
    only once it is all read, is refused whole with 413."""
    files = generated(5)
    with run_server(tmp_path / "data", max_parts_per_request=3) as running:
        archive = Archive(LiveServer(f"http://127.0.0.1:{running.port}", tmp_path / "data"))
        body = stow_json(archive.post(multipart([*files, b"\0" * 32 * 1024**2]),
                                      content_type()), 202)
        assert len(body["00081199"]["Value"]) == 3
        [refused] = failures(body)
        assert refused["reason"] == OUT_OF_RESOURCES
        assert "more than 3 parts" in refused["detail"]
        for data in files[3:]:
            archive.assert_absent(data)
        archive.baseline.update((archive.instance_url(data), data) for data in files[:3])
        archive.assert_intact()
        archive.keep(files[3:])  # no more parts than the limit: all read and stored
        metadata = multipart([b"[]"] * 4, part_type=DICOM_JSON)
        assert_error(archive.post(metadata, content_type().replace(DICOM, DICOM_JSON)), 413,
                     "more than 3 parts")
        archive.assert_intact()


def test_client_gone_mid_body_leaves_nothing(tmp_path: Path) -> None:
    """A client that disconnects half-way through a part: nothing stored, nothing staged once
    the server has finished with the connection (uvicorn waits for it when it stops)."""
    data = ct_series(1, size=64)[0]
    body = multipart([data])
    data_dir = tmp_path / "data"
    with run_server(data_dir) as running:
        head = (f"POST /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: {content_type()}\r\nContent-Length: {len(body)}\r\n\r\n")
        with socket.create_connection(("127.0.0.1", running.port)) as client:
            client.sendall(head.encode() + body[:len(body) // 2])
        archive = Archive(LiveServer(f"http://127.0.0.1:{running.port}", data_dir))
        archive.assert_absent(data)
    assert list((data_dir / "staging").iterdir()) == []
    assert list((data_dir / "blobs").glob("*/*/*")) == []


# -- Per-part failures: FailedSOPSequence, 202 or 409 -----------------------------------------


def test_garbage_single_part_is_409_cannot_understand(archive: Archive) -> None:
    body = stow_json(archive.post(b"this is not DICOM", DICOM), 409)
    [failure] = failures(body)
    assert failure["reason"] == CANNOT_UNDERSTAND
    assert "DICOM" in failure["detail"]
    assert "00081199" not in body
    archive.assert_intact()


def test_non_dicom_part_among_good_parts_is_202(archive: Archive) -> None:
    files = generated(2)
    body = stow_json(archive.post(multipart([files[0], b"\x00not dicom\xff" * 50, files[1]]),
                                  content_type()), 202)
    [failure] = failures(body)
    assert failure["reason"] == CANNOT_UNDERSTAND
    assert sorted(stored_sops(body)) == sorted(uids(d)[2] for d in files)
    for data in files:
        archive.assert_stored(data)
    archive.assert_intact()
    archive.baseline.update({archive.instance_url(d): d for d in files})


def test_empty_part_among_good_parts_is_202(archive: Archive) -> None:
    data = generated()[0]
    body = stow_json(archive.post(multipart([b"", data]), content_type()), 202)
    assert [f["reason"] for f in failures(body)] == [CANNOT_UNDERSTAND]
    assert stored_sops(body) == [uids(data)[2]]
    archive.assert_stored(data)
    archive.baseline[archive.instance_url(data)] = data
    archive.assert_intact()


def test_part_of_another_type_fails_alone(archive: Archive) -> None:
    data = generated()[0]
    text = f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nhello\r\n".encode()
    body = stow_json(archive.post(text + multipart([data]), content_type()), 202)
    [failure] = failures(body)
    assert failure["reason"] == CANNOT_UNDERSTAND
    assert "text/plain" in failure["detail"]
    archive.assert_stored(data)
    archive.baseline[archive.instance_url(data)] = data
    archive.assert_intact()


@pytest.mark.parametrize("name", ["rtstruct.dcm", "no_meta.dcm"])
def test_dicom_without_file_meta_is_cannot_understand(archive: Archive, name: str) -> None:
    """pydicom's files without preamble and file meta are not Part 10 files."""
    body = stow_json(archive.post(corpus_bytes(name), DICOM), 409)
    assert [f["reason"] for f in failures(body)] == [CANNOT_UNDERSTAND]
    archive.assert_intact()


@pytest.mark.parametrize("keyword", UIDS)
def test_missing_uid_is_cannot_understand(archive: Archive, keyword: str) -> None:
    good = generated()[0]
    bad = generated(**{keyword: None})[0]
    body = stow_json(archive.post(multipart([bad, good]), content_type()), 202)
    [failure] = failures(body)
    assert failure["reason"] == CANNOT_UNDERSTAND
    assert keyword in failure["detail"]
    archive.assert_stored(good)
    archive.baseline[archive.instance_url(good)] = good
    archive.assert_intact()


@pytest.mark.parametrize("keyword", UIDS)
@pytest.mark.parametrize("value", ["1.2.abc", "1..2", "1" * 65, "../../etc/passwd"])
def test_invalid_uid_is_cannot_understand(archive: Archive, keyword: str, value: str) -> None:
    sop = generate_uid()
    bad = generated(**{keyword: value, **({} if keyword == "SOPInstanceUID" else
                                          {"SOPInstanceUID": sop})})[0]
    body = stow_json(archive.post(bad, DICOM), 409)
    [failure] = failures(body)
    assert failure["reason"] == CANNOT_UNDERSTAND
    assert f"invalid {keyword}" in failure["detail"]
    if keyword != "SOPInstanceUID":
        assert failure["sop"] == sop  # the failure names the instance when it can
    archive.assert_intact()


def test_study_differing_from_the_url_is_a900(archive: Archive) -> None:
    url_study = generate_uid()
    matching = generated(study_uid=url_study)[0]
    other = generated()[0]
    body = stow_json(archive.post(multipart([matching, other]), content_type(),
                                  url=f"{archive.studies}/{url_study}"), 202)
    [failure] = failures(body)
    assert failure["reason"] == DATA_SET_DOES_NOT_MATCH
    assert failure["sop"] == uids(other)[2]
    assert url_study in failure["detail"]
    assert body["00081190"]["Value"] == [f"{archive.studies}/{url_study}"]
    archive.assert_stored(matching)
    archive.assert_absent(other)
    archive.baseline[archive.instance_url(matching)] = matching
    archive.assert_intact()


def test_only_other_studies_for_the_url_is_409(archive: Archive) -> None:
    data = generated()[0]
    body = stow_json(archive.post(data, DICOM, url=f"{archive.studies}/{generate_uid()}"), 409)
    assert [f["reason"] for f in failures(body)] == [DATA_SET_DOES_NOT_MATCH]
    archive.assert_absent(data)
    archive.assert_intact()


def test_same_sop_instance_uid_with_other_content_is_0110(archive: Archive) -> None:
    """MR_small_implicit.dcm is MR_small.dcm re-encoded under the same SOP Instance UID."""
    original = corpus_bytes("MR_small.dcm")
    other = corpus_bytes("MR_small_implicit.dcm")
    assert uids(other) == uids(original) and other != original
    body = stow_json(archive.post(other, DICOM), 409)
    [failure] = failures(body)
    assert failure["reason"] == PROCESSING_FAILURE
    assert failure["sop"] == uids(original)[2]
    assert "already exists" in failure["detail"]
    archive.assert_stored(original)
    archive.assert_intact()


def test_conflict_among_new_parts_is_202(archive: Archive) -> None:
    fresh = generated()[0]
    conflicting = corpus_bytes("MR_small_bigendian.dcm")
    body = stow_json(archive.post(multipart([conflicting, fresh]), content_type()), 202)
    assert [f["reason"] for f in failures(body)] == [PROCESSING_FAILURE]
    assert stored_sops(body) == [uids(fresh)[2]]
    archive.assert_stored(corpus_bytes("MR_small.dcm"))
    archive.baseline[archive.instance_url(fresh)] = fresh
    archive.assert_intact()


def test_two_parts_with_one_sop_instance_uid_in_one_request(archive: Archive) -> None:
    sop = generate_uid()
    first = generated(SOPInstanceUID=sop)[0]
    second = generated(SOPInstanceUID=sop)[0]  # another series: other content
    body = stow_json(archive.post(multipart([first, second]), content_type()), 202)
    assert stored_sops(body) == [sop]
    assert [f["reason"] for f in failures(body)] == [PROCESSING_FAILURE]
    archive.assert_stored(first)
    archive.baseline[archive.instance_url(first)] = first
    archive.assert_intact()


def test_parts_stored_together_settle_in_part_order(archive: Archive) -> None:
    """Parts are parsed and made durable several at once but indexed in their order: of two
    parts with one SOP Instance UID the first is kept, wherever each finishes parsing, and
    the response lists the instances in part order."""
    files = generated(12)
    sops = [uids(data)[2] for data in files]
    rivals = [generated(SOPInstanceUID=sop)[0] for sop in sops[:3]]  # other content
    parts = [files[0], rivals[0], files[1], files[2], rivals[1], *files[3:8], rivals[2],
             *files[8:]]
    body = stow_json(archive.post(multipart(parts), content_type()), 202)
    assert stored_sops(body) == sops
    assert [(f["sop"], f["reason"]) for f in failures(body)] == [
        (sop, PROCESSING_FAILURE) for sop in sops[:3]]
    for data in files:
        archive.assert_stored(data)
        archive.baseline[archive.instance_url(data)] = data
    archive.assert_intact()


def nested(depth: int) -> bytes:
    """A fresh instance whose ContentSequence items nest `depth` sequences deep."""
    ds = pydicom.dcmread(BytesIO(generated()[0]))
    item = pydicom.Dataset()
    item.CodeValue = "LEAF"
    for _ in range(depth - 1):
        outer = pydicom.Dataset()
        outer.ContentSequence = pydicom.Sequence([item])
        item = outer
    ds.ContentSequence = pydicom.Sequence([item])
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_sequences_nested_too_deep_cannot_be_understood(archive: Archive) -> None:
    """Nesting past 50 sequences is refused with the reason (its DICOM JSON would pass the
    255 levels JSON encoders take); 50 are stored and served as JSON and XML."""
    deep = nested(51)
    [failure] = failures(stow_json(archive.post(deep, DICOM), 409))
    assert failure["reason"] == CANNOT_UNDERSTAND and "nested more than 50" in failure["detail"]
    archive.assert_absent(deep)
    kept = nested(50)
    assert stored_sops(stow_json(archive.post(kept, DICOM), 200)) == [uids(kept)[2]]
    archive.assert_stored(kept)
    metadata = archive.instance_url(kept) + "/metadata"
    assert requests.get(metadata).status_code == 200
    xml = {"Accept": 'multipart/related; type="application/dicom+xml"'}
    assert requests.get(metadata, headers=xml).status_code == 200
    archive.baseline[archive.instance_url(kept)] = kept
    archive.assert_intact()


@pytest.mark.parametrize("name", [None, "SC_rgb_rle.dcm", "JPEG2000.dcm"])
def test_frames_the_pixel_data_cannot_hold_cannot_be_understood(archive: Archive,
                                                                name: str | None) -> None:
    """A header declaring 999,999,999 frames over one frame's pixels (native or
    encapsulated) is refused at ingest, before any rendering could trust it (issue 13's
    poison instance); the same file with its true count is stored."""
    source = generated()[0] if name is None else corpus_bytes(name, generate_uid())
    poison = edited(source, NumberOfFrames=999_999_999)
    [failure] = failures(stow_json(archive.post(poison, DICOM), 409))
    assert failure["reason"] == CANNOT_UNDERSTAND and "NumberOfFrames" in failure["detail"]
    archive.assert_absent(poison)
    honest = edited(source, NumberOfFrames=1)
    assert stored_sops(stow_json(archive.post(honest, DICOM), 200)) == [uids(honest)[2]]
    archive.baseline[archive.instance_url(honest)] = honest
    archive.assert_intact()


def test_series_uid_already_used_by_another_study_is_0110(archive: Archive) -> None:
    kept = next(iter(archive.baseline.values()))
    _study, series, _sop = uids(kept)
    data = generated(SeriesInstanceUID=series)[0]
    body = stow_json(archive.post(data, DICOM), 409)
    [failure] = failures(body)
    assert failure["reason"] == PROCESSING_FAILURE
    assert series in failure["detail"]
    archive.assert_absent(data)
    archive.assert_intact()


def test_restoring_identical_bytes_is_200_and_changes_nothing(archive: Archive) -> None:
    files = list(archive.baseline.values())[:3]
    before = archive.indexed_instances()
    body = stow_json(archive.post(multipart(files), content_type()), 200)
    assert sorted(stored_sops(body)) == sorted(uids(d)[2] for d in files)
    assert "00081198" not in body
    single = stow_json(archive.post(files[0], DICOM), 200)
    assert stored_sops(single) == [uids(files[0])[2]]
    assert archive.indexed_instances() == before
    archive.assert_intact()


def test_same_instance_twice_in_one_request_is_200(archive: Archive) -> None:
    data = generated()[0]
    body = stow_json(archive.post(multipart([data, data]), content_type()), 200)
    assert stored_sops(body) == [uids(data)[2]] * 2
    archive.baseline[archive.instance_url(data)] = data
    archive.assert_intact()


# -- Framing variants that must work ---------------------------------------------------------


@pytest.mark.parametrize("template", [
    'multipart/related; type="application/dicom"; boundary={b}',
    "multipart/related; type=application/dicom; boundary={b}",
    'multipart/related; boundary="{b}"; type="application/dicom"',
    "multipart/related; boundary={b}; type=application/dicom",
    'multipart/related;boundary="{b}";type="application/dicom"',
    "Multipart/Related; Type=application/dicom; Boundary={b}",
    'multipart/related; type="application/dicom"; start="<p1>"; boundary="{b}"',
    "multipart/related; boundary={b}",  # parts declare their own type
])
def test_content_type_parameter_forms(archive: Archive, template: str) -> None:
    boundary = "weird=boundary:with'chars" if '"{b}"' in template else BOUNDARY
    data = generated()[0]
    body = stow_json(archive.post(multipart([data], boundary=boundary),
                                  template.format(b=boundary)), 200)
    assert stored_sops(body) == [uids(data)[2]]
    archive.assert_stored(data)
    archive.baseline[archive.instance_url(data)] = data
    archive.assert_intact()


def test_parts_without_content_type_are_dicom(archive: Archive) -> None:
    files = generated(2)
    body = b"".join(f"--{BOUNDARY}\r\n\r\n".encode() + d + b"\r\n" for d in files)
    body += f"--{BOUNDARY}--".encode()  # no CRLF after the close delimiter
    stow_json(archive.post(body, content_type()), 200)
    for data in files:
        archive.assert_stored(data)
        archive.baseline[archive.instance_url(data)] = data
    archive.assert_intact()


def test_preamble_and_epilogue_are_ignored(archive: Archive) -> None:
    data = generated()[0]
    body = b"preamble text\r\n" + multipart([data]) + b"epilogue text\r\n"
    stow_json(archive.post(body, content_type()), 200)
    archive.assert_stored(data)
    archive.baseline[archive.instance_url(data)] = data
    archive.assert_intact()


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


@pytest.mark.parametrize("chunk", [7, 997, 65536])
def test_chunked_transfer_encoding_multipart(archive: Archive, chunk: int) -> None:
    files = generated(2)
    response = archive.post(_chunks(multipart(files), chunk), content_type())
    body_json = stow_json(response, 200)
    assert len(stored_sops(body_json)) == 2
    for data in files:
        archive.assert_stored(data)
        archive.baseline[archive.instance_url(data)] = data
    archive.assert_intact()


def test_chunked_transfer_encoding_single_part(archive: Archive) -> None:
    data = generated()[0]
    stow_json(archive.post(_chunks(data, 333), DICOM), 200)
    archive.assert_stored(data)
    archive.baseline[archive.instance_url(data)] = data
    archive.assert_intact()


def test_chunked_truncated_multipart_keeps_only_completed_parts(archive: Archive) -> None:
    files = generated(2)
    response = archive.post(_chunks(multipart(files, close=False), 1000), content_type())
    assert_error(response, 400, "1 instance(s) completed before it")
    assert archive.retrieve(files[0]).content == files[0]
    archive.assert_absent(files[1])
    archive.assert_intact()


# -- Response representation ------------------------------------------------------------------


NATIVE_DICOM_MODEL = "{http://dicom.nema.org/PS3.19/models/NativeDICOM}"


def _bare(root: ET.Element) -> ET.Element:
    """The document with every element out of the PS3.19 namespace (which a full store's
    answers are in), so that paths can name them plainly."""
    for node in root.iter():
        assert node.tag.startswith(NATIVE_DICOM_MODEL), node.tag
        node.tag = node.tag[len(NATIVE_DICOM_MODEL):]
    return root


def _xml_failures(root: ET.Element) -> list[tuple[int, str]]:
    """(FailureReason, detail) per FailedSOPSequence item of a NativeDicomModel."""
    out = []
    for item in root.findall("./DicomAttribute[@tag='00081198']/Item"):
        reason = item.find("./DicomAttribute[@tag='00081197']/Value")
        detail = item.find("./DicomAttribute[@privateCreator='GOOGLE']/Value")
        assert reason is not None and detail is not None
        assert item.find("./DicomAttribute[@privateCreator='GOOGLE']").get("vr") == "LT"
        out.append((int(reason.text or ""), detail.text or ""))
    return out


@pytest.mark.parametrize("accept", [None, "application/dicom+xml", "application/dicom",
                                    "*/*", "text/html"])
def test_response_is_native_dicom_xml_by_default(archive: Archive, accept: str | None) -> None:
    data = generated()[0]
    response = archive.post(multipart([b"junk", data]), content_type(), accept=accept)
    assert response.status_code == 202
    assert response.headers["content-type"].startswith("application/dicom+xml")
    root = _bare(ET.fromstring(response.content))
    assert root.tag == "NativeDicomModel"
    [(reason, detail)] = _xml_failures(root)
    assert reason == CANNOT_UNDERSTAND and "DICOM" in detail
    referenced = root.findall("./DicomAttribute[@tag='00081199']/Item")
    assert len(referenced) == 1
    sop = referenced[0].find("./DicomAttribute[@tag='00081155']/Value")
    assert sop is not None and sop.text == uids(data)[2]
    url = referenced[0].find("./DicomAttribute[@tag='00081190']/Value")
    assert url is not None and url.text == archive.instance_url(data)
    archive.baseline[archive.instance_url(data)] = data
    archive.assert_intact()


def test_conflict_detail_in_xml_and_json_agree(archive: Archive) -> None:
    other = corpus_bytes("MR_small_implicit.dcm")
    as_xml = archive.post(other, DICOM, accept="application/dicom+xml")
    as_json = archive.post(other, DICOM, accept=DICOM_JSON)
    assert as_xml.status_code == as_json.status_code == 409
    [(reason, detail)] = _xml_failures(_bare(ET.fromstring(as_xml.content)))
    [failure] = failures(as_json.json())
    assert reason == failure["reason"] == PROCESSING_FAILURE
    assert detail == failure["detail"]
    archive.assert_intact()


def test_google_store_path_and_unknown_store(archive: Archive) -> None:
    data = generated()[0]
    google = f"{archive.server.google()}/studies"
    stow_json(archive.post(data, DICOM, url=google), 200)
    archive.assert_stored(data)
    archive.baseline[archive.instance_url(data)] = data
    missing = archive.server.google("projects/x/locations/y/datasets/z/dicomStores/w")
    lost = generated()[0]
    assert_error(archive.post(lost, DICOM, url=f"{missing}/studies"), 404, "not found")
    assert_error(archive.post(lost, DICOM, url=f"{archive.server.google(version='v2')}/studies"),
                 404)
    archive.assert_absent(lost)
    archive.assert_intact()


def test_command_group_elements_in_a_stored_file_do_not_break_transcoding(
        archive: Archive) -> None:
    """A file carrying command group elements (0000,eeee) in its dataset, which PS3.10 7.1
    does not allow and pydicom will not write, is kept as sent, and its transcoded copies
    leave those elements out instead of failing (issue 13 saw 500s)."""
    ds = pydicom.dcmread(BytesIO(generated()[0]))
    ds.add_new(0x00000002, "UI", ds.SOPClassUID)
    ds.add_new(0x00000100, "US", 1)
    out = BytesIO()
    out.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(out, ds.file_meta)
    encoded = DicomFileLike(out)
    encoded.is_little_endian, encoded.is_implicit_VR = True, False
    write_dataset(encoded, ds)
    data = out.getvalue()
    assert stored_sops(stow_json(archive.post(data, DICOM), 200)) == [uids(data)[2]]
    archive.assert_stored(data)
    for syntax in ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90"):
        accept = f'multipart/related; type="application/dicom"; transfer-syntax={syntax}'
        response = requests.get(archive.instance_url(data), headers={"Accept": accept})
        assert response.status_code == 200, response.text
        [(_, part)] = parse_multipart(response)
        copy = pydicom.dcmread(BytesIO(part))
        assert 0x00000100 not in copy and copy.SOPInstanceUID == uids(data)[2]
        assert copy.file_meta.TransferSyntaxUID == syntax
    archive.baseline[archive.instance_url(data)] = data
    archive.assert_intact()


def test_an_unknown_vr_cannot_be_understood(archive: Archive) -> None:
    """pydicom raises NotImplementedError for VR 'ZZ' as it converts the element: the
    instance is refused as Cannot Understand, not failed as an error of ours."""
    data = generated()[0]
    at = data.index(b"\x10\x00\x10\x00PN")  # PatientName, explicit VR
    mutated = data[:at + 4] + b"ZZ" + data[at + 6:]
    [failure] = failures(stow_json(archive.post(mutated, DICOM), 409))
    assert failure["reason"] == CANNOT_UNDERSTAND and "ZZ" in failure["detail"]
    archive.assert_absent(mutated)
    archive.assert_intact()


def test_a_tiny_rgb_image_goes_out_as_jpeg_ls(archive: Archive) -> None:
    """pyjpegls cannot encode pydicom's 3x3 SC_rgb_small_odd (its buffer estimate is too
    small); the copy is still made, whole and lossless, instead of a 200 cut short."""
    data = corpus_bytes("SC_rgb_small_odd.dcm", generate_uid())
    assert stow_json(archive.post(data, DICOM), 200)
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.80'
    response = requests.get(archive.instance_url(data), headers={"Accept": accept})
    assert response.status_code == 200, response.text
    [(_, part)] = parse_multipart(response)
    copy, original = (pydicom.dcmread(BytesIO(b)) for b in (part, data))
    assert copy.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"
    assert (copy.pixel_array == original.pixel_array).all()
    archive.baseline[archive.instance_url(data)] = data
    archive.assert_intact()
