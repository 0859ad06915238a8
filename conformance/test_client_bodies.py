"""What real clients send: Part 10 bodies without a preamble, truncated files, trailing slashes
and dates that are not in DICOM form; Store PS3.18 10.5, Search 10.6, PS3.10 7.1, PS3.5 6.2.
"""

from __future__ import annotations

import uuid
from io import BytesIO

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from conformance.corpus import build_corpus
from conformance.wire import (
    ANY_TS_DICOM,
    DICOM_JSON,
    FAILED_SOP_SEQUENCE,
    FAILURE_REASON,
    SERIES_UID,
    STUDY_UID,
    decode_multipart,
    encode_multipart,
    first,
    media_type,
    query_url,
    search_results,
    store_response,
    values,
)

TRUNCATED_AT = 20_000  # inside the Pixel Data of CT_small.dcm (39,206 bytes)


def _in_memory_dataset(patient_id: str) -> Dataset:
    """A dataset as a pipeline builds it in code: its File Meta group holds only the transfer
    syntax, and it was never read from or written to a file (so it has no preamble)."""
    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Pipeline^Output"
    ds.PatientID = patient_id
    ds.Modality = "OT"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(64))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _path(ds: Dataset) -> str:
    return (f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}")


def _patient_id() -> str:
    return "CONF" + uuid.uuid4().hex[:10].upper()


def test_part10_without_preamble_is_stored_as_part10(base_url: str, http: requests.Session,
                                                     client: DICOMwebClient) -> None:
    """PS3.18 10.5 and PS3.10 7.1: dicomweb-client sends what pydicom's dcmwrite writes for an
    in-memory dataset (File Meta group first, no 128-byte preamble, no "DICM"); it is stored,
    and retrieved as stored (PS3.18 10.4, 8.7.3.5.2) it is a PS3.10 file: preamble, "DICM",
    File Meta Information with the Media Storage SOP Class and Instance UIDs."""
    ds = _in_memory_dataset(_patient_id())
    sent = BytesIO()
    pydicom.dcmwrite(sent, ds)
    assert sent.getvalue()[:2] == b"\x02\x00"  # what goes over the wire: no preamble
    result = client.store_instances([ds])
    assert [str(i.ReferencedSOPInstanceUID) for i in result.ReferencedSOPSequence] == [
        ds.SOPInstanceUID]
    response = http.get(f"{base_url}/{_path(ds)}", headers={"Accept": ANY_TS_DICOM})
    assert response.status_code == 200, response.text[:300]
    (part,) = decode_multipart(response)
    assert part.content[128:132] == b"DICM", part.content[:140]
    back = pydicom.dcmread(BytesIO(part.content))
    assert back.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert back.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert back.PatientName == "Pipeline^Output"
    assert back.PixelData == ds.PixelData


def test_truncated_file_is_refused(base_url: str, http: requests.Session) -> None:
    """PS3.18 10.5.3.1 and Annex I: a Part 10 file cut short (CT_small.dcm, first 20,000
    bytes) is not stored: 409 for a request of that one instance, a FailedSOPSequence item with
    FailureReason C000 (cannot understand), and nothing to retrieve or find afterwards."""
    instance = build_corpus().bundled["CT_small.dcm"]
    body, content_type = encode_multipart([instance.data[:TRUNCATED_AT]])
    response = http.post(f"{base_url}/studies", data=body,
                         headers={"Content-Type": content_type, "Accept": DICOM_JSON})
    assert response.status_code == 409, response.text[:300]
    (failed,) = values(store_response(response), FAILED_SOP_SEQUENCE)
    assert first(failed, FAILURE_REASON) == 0xC000
    fetched = http.get(f"{base_url}/{instance.path}", headers={"Accept": ANY_TS_DICOM})
    assert fetched.status_code == 404
    found = http.get(query_url(f"{base_url}/instances", [("SOPInstanceUID", instance.sop)]),
                     headers={"Accept": DICOM_JSON})
    assert search_results(found) == []


@pytest.mark.parametrize(("resource", "key"), [("studies", STUDY_UID), ("series", SERIES_UID)],
                         ids=["studies", "series"])
def test_trailing_slash_is_the_same_resource(base_url: str, http: requests.Session,
                                             client: DICOMwebClient, resource: str,
                                             key: str) -> None:
    """PS3.18 10.6.1 (/studies, /series): `{base}/studies/?PatientID=…`, as some clients write
    it, answers as `{base}/studies?PatientID=…` does, directly rather than by a redirect."""
    ds = _in_memory_dataset(_patient_id())
    client.store_instances([ds])
    params = [("PatientID", ds.PatientID)]
    slashed = http.get(query_url(f"{base_url}/{resource}/", params),
                       headers={"Accept": DICOM_JSON}, allow_redirects=False)
    plain = http.get(query_url(f"{base_url}/{resource}", params),
                     headers={"Accept": DICOM_JSON})
    assert slashed.status_code == 200, (slashed.status_code, slashed.headers.get("location"))
    assert media_type(slashed.headers.get("content-type", ""))[0] == DICOM_JSON
    expected = ds.StudyInstanceUID if key == STUDY_UID else ds.SeriesInstanceUID
    assert [first(r, key) for r in search_results(slashed)] == [expected]
    assert slashed.json() == search_results(plain)


def test_date_not_in_da_form_answers_400(base_url: str, http: requests.Session) -> None:
    """PS3.5 6.2 (DA is YYYYMMDD) and PS3.18 8.3.4.1, 10.6.3.1: `StudyDate=2024-01-01` is an
    invalid query parameter value, answered 400 rather than searched as if it matched nothing."""
    response = http.get(query_url(f"{base_url}/studies", [("StudyDate", "2024-01-01")]),
                        headers={"Accept": DICOM_JSON})
    assert response.status_code == 400, (response.status_code, response.text[:300])
