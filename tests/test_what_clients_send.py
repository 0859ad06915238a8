"""What real clients send (issue 9): Part 10 without a preamble from an in-memory dataset,
trailing slashes, and dates that are not DA; each answered as PS3.10 and PS3.18 say."""

from io import BytesIO

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from tests.conftest import LiveServer
from tests.dataset_factories import corpus_bytes

AS_STORED = {"Accept": "application/dicom; transfer-syntax=*"}


def in_memory_dataset(meta: bool = True) -> Dataset:
    """A dataset as an AI pipeline builds it: attributes set in code, a File Meta group
    with only the transfer syntax, never read from or written to a file."""
    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Pipeline^Output"
    ds.PatientID = "AI-1"
    ds.Modality = "OT"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.arange(64, dtype=np.uint8).tobytes()
    if meta:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _url(ds: Dataset) -> str:
    return (f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}")


def test_dicomweb_client_stores_an_in_memory_dataset(live_server: LiveServer) -> None:
    """dicomweb-client writes it with pydicom's dcmwrite: File Meta group first, no preamble,
    no 'DICM', no group length. It is stored as a proper Part 10 file."""
    ds = in_memory_dataset()
    sent = BytesIO()
    pydicom.dcmwrite(sent, ds)
    assert sent.getvalue()[:2] == b"\x02\x00"  # what goes over the wire
    client = DICOMwebClient(live_server.dicomweb)
    result = client.store_instances([ds])
    assert "00081198" not in result  # no FailedSOPSequence
    stored = requests.get(live_server.dicomweb + _url(ds), headers=AS_STORED).content
    assert stored[128:132] == b"DICM"
    back = pydicom.dcmread(BytesIO(stored))
    assert back.file_meta.FileMetaInformationGroupLength > 0
    assert back.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert back.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert back.PatientName == "Pipeline^Output" and back.PixelData == ds.PixelData
    [found] = client.search_for_instances(search_filters={"SOPInstanceUID": ds.SOPInstanceUID})
    assert found["00080018"]["Value"] == [ds.SOPInstanceUID]
    frame = client.retrieve_instance_frames(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                            ds.SOPInstanceUID, [1])
    assert frame == [ds.PixelData]


def test_a_body_without_file_meta_says_what_is_missing(live_server: LiveServer) -> None:
    ds = in_memory_dataset(meta=False)
    body = BytesIO()
    pydicom.dcmwrite(body, ds, implicit_vr=False, little_endian=True)
    response = requests.post(f"{live_server.dicomweb}/studies", data=body.getvalue(),
                             headers={"Content-Type": "application/dicom",
                                      "Accept": "application/dicom+json"})
    assert response.status_code == 409
    [failed] = response.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [0xC000]
    assert "File Meta Information" in failed["00091097"]["Value"][0]
    assert requests.get(f"{live_server.dicomweb}/instances").status_code == 204


@pytest.mark.parametrize("path", ["/dicomweb/studies/", "/dicomweb/series/",
                                  "/v1/projects/local/locations/local/datasets/default/"
                                  "dicomStores/default/dicomWeb/studies/"])
def test_a_trailing_slash_is_served_directly(live_server: LiveServer, path: str) -> None:
    """Seed 004 writes its samples as `/studies/?PatientID=…`; no redirect (which behind a
    proxy would name the internal host), the same answer as without the slash."""
    ds = in_memory_dataset()
    DICOMwebClient(live_server.dicomweb).store_instances([ds])
    got = requests.get(f"{live_server.base}{path}?PatientID=AI-1", allow_redirects=False)
    want = requests.get(f"{live_server.base}{path.rstrip('/')}?PatientID=AI-1")
    assert got.status_code == 200 and got.json() == want.json()


def test_the_service_root_is_not_a_redirect(live_server: LiveServer) -> None:
    """It answers OPTIONS (Retrieve Capabilities) and names it in Allow otherwise."""
    for path in ("/dicomweb", "/dicomweb/"):
        response = requests.get(live_server.base + path, allow_redirects=False)
        assert response.status_code == 405
        assert response.headers["Allow"] == "OPTIONS"
        assert response.json()["error"]["code"] == 405


@pytest.mark.parametrize("key, value", [
    ("StudyDate", "2024-01-01"), ("StudyDate", "20240101-2024-12-31"), ("StudyDate", "2024"),
    ("StudyTime", "10:30"), ("PatientBirthDate", "01/02/1990"), ("StudyDate", "20241340"),
])
def test_dates_and_times_not_in_dicom_form_are_refused(live_server: LiveServer, key: str,
                                                       value: str) -> None:
    """PS3.5 6.2: DA is YYYYMMDD, TM HHMMSS.FFFFFF (leading parts allowed); a value in
    another form is a client's mistake, not a search that matched nothing."""
    response = requests.get(f"{live_server.dicomweb}/studies", params={key: value})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert key in message and ("YYYYMMDD" in message or "HHMMSS" in message)


@pytest.mark.parametrize("value", ["20240101", "20240101-20241231", "-20241231", "20240101-",
                                   "*"])
def test_dates_in_dicom_form_are_searched(live_server: LiveServer, value: str) -> None:
    assert requests.get(f"{live_server.dicomweb}/studies",
                        params={"StudyDate": value}).status_code == 204


@pytest.mark.parametrize("cut, element", [(20_000, "PixelData (7FE00010)"),
                                          (5_000, "(00431029)")])
def test_a_truncated_file_is_refused_naming_the_element(live_server: LiveServer, cut: int,
                                                        element: str) -> None:
    """CT_small.dcm cut short used to be stored, then served cut off after a 200."""
    data = corpus_bytes("CT_small.dcm")[:cut]
    response = requests.post(f"{live_server.dicomweb}/studies", data=data,
                             headers={"Content-Type": "application/dicom",
                                      "Accept": "application/dicom+json"})
    assert response.status_code == 409
    [failed] = response.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [0xC000]
    detail = failed["00091097"]["Value"][0]
    assert element in detail and "truncated" in detail
    assert failed["00081155"]["Value"]  # the instance is named
    assert requests.get(f"{live_server.dicomweb}/instances").status_code == 204
    assert list((live_server.data_dir / "staging").iterdir()) == []


def test_a_blob_cut_short_in_storage_is_an_error_before_any_header(
        live_server: LiveServer) -> None:
    """No answer promises bytes it cannot send: a stored blob found shorter than the index
    says answers 500 DATA_LOSS with a Google body, for the instance, its frames and its
    bulk data, instead of a 200 cut off mid-body."""
    data = corpus_bytes("CT_small.dcm")
    assert requests.post(f"{live_server.dicomweb}/studies", data=data,
                         headers={"Content-Type": "application/dicom"}).status_code == 200
    [blob] = [p for p in (live_server.data_dir / "blobs").rglob("*") if p.is_file()]
    blob.write_bytes(data[:20_000])
    ds = pydicom.dcmread(BytesIO(data))
    url = live_server.dicomweb + _url(ds)
    for path, accept in (("", "application/dicom; transfer-syntax=*"),
                         ("", 'multipart/related; type="application/dicom"'),
                         ("/frames/1", 'multipart/related; type="application/octet-stream"'),
                         ("/bulkdata/7FE00010", None)):
        response = requests.get(url + path, headers={"Accept": accept} if accept else {})
        assert response.status_code == 500, path
        assert response.json()["error"]["status"] == "DATA_LOSS"
        assert "damaged" in response.json()["error"]["message"]


def test_a_blob_gone_from_storage_is_data_loss_not_a_crash(live_server: LiveServer) -> None:
    data = corpus_bytes("CT_small.dcm")
    assert requests.post(f"{live_server.dicomweb}/studies", data=data,
                         headers={"Content-Type": "application/dicom"}).status_code == 200
    [blob] = [p for p in (live_server.data_dir / "blobs").rglob("*") if p.is_file()]
    blob.unlink()
    url = live_server.dicomweb + _url(pydicom.dcmread(BytesIO(data)))
    for path in ("", "/frames/1", "/bulkdata/7FE00010"):
        response = requests.get(url + path, headers={"Accept": "*/*"})
        assert response.status_code == 500, path
        assert response.json()["error"]["status"] == "DATA_LOSS"
        assert "gone" in response.json()["error"]["message"]
