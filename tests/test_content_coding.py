"""Metadata and search answers are gzip-coded for clients that accept it, and metadata
carries an ETag a client revalidates with (If-None-Match → 304) until an instance changes."""

import gzip
from io import BytesIO

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from pacs.http.content_coding import accepts_gzip
from tests.conftest import LiveServer
from tests.dataset_factories import ct_series, edited
from tests.multipart_parts import parse_multipart

DICOM = {"Content-Type": "application/dicom"}


def raw_get(url: str, **headers: str) -> requests.Response:
    """GET without requests' own gzip decoding, so the coding on the wire is what we see."""
    response = requests.get(url, headers=headers, stream=True)
    response._content = response.raw.read(decode_content=False)  # noqa: SLF001
    return response


@pytest.fixture
def series(live_server: LiveServer) -> tuple[str, list[bytes]]:
    """A stored 20-instance series: its metadata URL and its files."""
    files = ct_series(20, size=8, patient="CODING^TEST")
    for data in files:
        assert requests.post(f"{live_server.dicomweb}/studies", data=data, headers=DICOM).ok
    ds = pydicom.dcmread(BytesIO(files[0]))
    return (f"{live_server.dicomweb}/studies/{ds.StudyInstanceUID}/series/"
            f"{ds.SeriesInstanceUID}/metadata"), files


def test_metadata_is_gzip_coded_only_when_accepted(series: tuple[str, list[bytes]]) -> None:
    url, _ = series
    plain = raw_get(url, **{"Accept-Encoding": "identity"})
    coded = raw_get(url, **{"Accept-Encoding": "gzip, deflate"})
    refused = raw_get(url, **{"Accept-Encoding": "gzip;q=0, *"})
    assert plain.status_code == coded.status_code == refused.status_code == 200
    assert "Content-Encoding" not in plain.headers and "Content-Encoding" not in refused.headers
    assert coded.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(coded.content) == plain.content == refused.content
    assert len(coded.content) * 5 < len(plain.content)
    assert "accept-encoding" in coded.headers["Vary"].lower()
    assert len(requests.get(url).json()) == 20  # requests decodes it itself


def test_metadata_etag_revalidates_until_an_instance_changes(
        live_server: LiveServer, series: tuple[str, list[bytes]]) -> None:
    url, files = series
    first = requests.get(url)
    etag = first.headers["ETag"]
    assert etag.startswith('W/"') and first.headers["Cache-Control"] == "private, no-cache"
    assert raw_get(url, **{"Accept-Encoding": "identity"}).headers["ETag"] == etag
    again = raw_get(url, **{"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["ETag"]) == (304, b"", etag)
    assert requests.get(url, headers={"If-None-Match": '"other", *'}).status_code == 304
    assert requests.get(url, headers={"If-None-Match": 'W/"other"'}).status_code == 200

    # the v1beta1 upsert replaces an instance in place: a new version
    changed = edited(files[3], PatientName="Changed^Name")
    ds = pydicom.dcmread(BytesIO(changed))
    v1beta1 = live_server.google(version="v1beta1")
    assert requests.put(f"{v1beta1}/studies/{ds.StudyInstanceUID}", data=changed,
                        headers=DICOM).status_code == 200
    after = requests.get(url, headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.headers["ETag"] != etag
    names = [item["00100010"]["Value"][0]["Alphabetic"] for item in after.json()]
    assert names.count("Changed^Name") == 1

    # so does one more instance in the series
    newer = after.headers["ETag"]
    extra = edited(files[0], SOPInstanceUID=pydicom.uid.generate_uid(), InstanceNumber=99)
    assert requests.post(f"{live_server.dicomweb}/studies", data=extra, headers=DICOM).ok
    grown = requests.get(url, headers={"If-None-Match": newer})
    assert grown.status_code == 200 and len(grown.json()) == 21
    assert grown.headers["ETag"] not in (etag, newer)


def test_xml_metadata_has_its_own_etag(series: tuple[str, list[bytes]]) -> None:
    url, _ = series
    xml = {"Accept": 'multipart/related; type="application/dicom+xml"'}
    first = requests.get(url, headers=xml)
    assert first.status_code == 200 and len(parse_multipart(first)) == 20
    assert first.headers["ETag"] != requests.get(url).headers["ETag"]
    again = requests.get(url, headers={**xml, "If-None-Match": first.headers["ETag"]})
    assert (again.status_code, again.content) == (304, b"")


def test_search_is_gzip_coded_and_dicomweb_client_reads_it(
        live_server: LiveServer, series: tuple[str, list[bytes]]) -> None:
    coded = raw_get(f"{live_server.dicomweb}/instances", **{"Accept-Encoding": "gzip"})
    assert coded.status_code == 200 and coded.headers["Content-Encoding"] == "gzip"
    assert len(requests.get(f"{live_server.dicomweb}/instances").json()) == 20
    client = DICOMwebClient(live_server.dicomweb)  # requests asks for gzip by default
    assert len(client.search_for_instances()) == 20
    url, _ = series
    ds = pydicom.dcmread(BytesIO(series[1][0]))
    metadata = client.retrieve_series_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID)
    assert len(metadata) == 20 and url.endswith("/metadata")


@pytest.mark.parametrize(("header", "accepted"), [
    ("gzip", True), ("gzip, deflate, br", True), ("x-gzip", True), ("*", True),
    ("GZIP;q=0.5", True), (None, False), ("", False), ("identity", False), ("br", False),
    ("gzip;q=0", False), ("gzip;q=0, *", False), ("*;q=0", False), ("gzip;q=bad", False),
])
def test_accept_encoding(header: str | None, accepted: bool) -> None:
    assert accepts_gzip(header) is accepted
