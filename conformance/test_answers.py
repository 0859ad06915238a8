"""What the server answers, held to the text: attributes of the levels above in search results,
private creators, no group lengths, Native DICOM Model XML, located bulk data parts, and the
transfer syntaxes PS3.18 8.7.3 keeps off the web (Search 10.6, Retrieve 10.4, Annex F).
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from io import BytesIO
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from conformance.corpus import Corpus
from conformance.wire import (
    ANY_TS_OCTETS,
    DICOM_JSON,
    DICOM_XML,
    MODALITY,
    NATIVE_DICOM_MODEL,
    PATIENT_ID,
    PATIENT_NAME,
    PIXEL_DATA,
    SERIES_NUMBER,
    SERIES_UID,
    SOP_INSTANCE,
    STUDY_DATE,
    STUDY_UID,
    JsonDataset,
    decode_multipart,
    encode_multipart,
    first,
    media_type,
    query_url,
    search_results,
    xml_namespace,
    xml_to_json,
)

DICOM_PARTS = 'multipart/related; type="application/dicom"'
XML_PARTS = f'multipart/related; type="{DICOM_XML}"'


def _part10(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _store(http: requests.Session, base_url: str, data: bytes) -> None:
    """Store one Part 10 file in a multipart request (PS3.18 10.5)."""
    body, content_type = encode_multipart([data])
    response = http.post(f"{base_url}/studies", data=body,
                         headers={"Content-Type": content_type, "Accept": DICOM_JSON})
    assert response.status_code == 200, response.text[:300]


def _with_group_length(ds: Dataset) -> bytes:
    """`ds` as a Part 10 file (Explicit VR Little Endian) with a (0008,0000) Group Length
    element in front of group 0008, which pydicom leaves out when it writes a dataset."""
    data = _part10(ds)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    meta_end = 144 + int.from_bytes(data[140:144], "little")  # after (0002,0000)'s value
    assert data[meta_end:meta_end + 2] == b"\x08\x00", "the data set does not start in 0008"
    group = DicomBytesIO()
    group.is_little_endian, group.is_implicit_VR = True, False
    write_dataset(group, ds.group_dataset(0x0008))
    length = len(group.getvalue()).to_bytes(4, "little")
    return data[:meta_end] + b"\x08\x00\x00\x00UL\x04\x00" + length + data[meta_end:]


def _bundled(name: str) -> Dataset:
    """A pydicom test file (never downloaded) under new Study, Series and SOP Instance UIDs."""
    path = get_testdata_file(name, download=False)
    if path is None:
        raise FileNotFoundError(f"pydicom test file {name} is not installed")
    ds = dcmread(Path(path))
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "CONF" + uuid.uuid4().hex[:10].upper()
    return ds


def _path(ds: Dataset) -> str:
    return (f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}")


def _metadata(http: requests.Session, url: str) -> JsonDataset:
    response = http.get(f"{url}/metadata", headers={"Accept": DICOM_JSON})
    assert response.status_code == 200, response.text[:300]
    (dataset,) = response.json()
    assert isinstance(dataset, dict)
    return dataset


def _only(http: requests.Session, url: str, params: list[tuple[str, str]]) -> JsonDataset:
    (found,) = search_results(http.get(query_url(url, params), headers={"Accept": DICOM_JSON}))
    return found


def _group_lengths(dataset: JsonDataset) -> list[str]:
    """Every (gggg,0000) key in a DICOM JSON dataset, sequence items included."""
    found = [key for key in dataset if key.endswith("0000")]
    for element in dataset.values():
        if element.get("vr") == "SQ":
            for item in element.get("Value", []):
                found += _group_lengths(item)
    return found


def _native_documents(response: requests.Response) -> list[ET.Element]:
    """The parts of a multipart/related; type="application/dicom+xml" answer, parsed."""
    assert response.status_code == 200, response.text[:300]
    kind, params = media_type(response.headers.get("content-type", ""))
    assert (kind, media_type(params.get("type", ""))[0]) == ("multipart/related", DICOM_XML)
    parts = decode_multipart(response)
    assert {media_type(p.content_type)[0] for p in parts} == {DICOM_XML}
    for part in parts:
        assert xml_namespace(part.content) == NATIVE_DICOM_MODEL
    return [ET.fromstring(p.content) for p in parts]


def test_all_series_carry_study_attributes(corpus: Corpus, base_url: str,
                                           http: requests.Session) -> None:
    """PS3.18 10.6.3.3.2: when the target is all series (/series), each result also has the
    study attributes of 10.6.3.3.1 (Table 10.6.3-3), e.g. PatientName and StudyDate."""
    series = corpus.ct[0].series
    found = _only(http, f"{base_url}/series", [("SeriesInstanceUID", series)])
    assert first(found, SERIES_UID) == series
    assert first(found, PATIENT_NAME) == f"{corpus.tag}^ALPHA"
    assert first(found, PATIENT_ID) == f"{corpus.tag}-A"
    assert first(found, STUDY_DATE) == "20240315"
    assert first(found, STUDY_UID) == corpus.study_a


def test_all_instances_carry_study_and_series_attributes(corpus: Corpus, base_url: str,
                                                         http: requests.Session) -> None:
    """PS3.18 10.6.3.3.3: when the target is all instances (/instances), each result also has
    the study attributes (Table 10.6.3-3) and the series attributes (Table 10.6.3-4)."""
    instance = corpus.bundled["MR_small.dcm"]
    found = _only(http, f"{base_url}/instances", [("SOPInstanceUID", instance.sop)])
    assert first(found, SOP_INSTANCE) == instance.sop
    assert first(found, PATIENT_NAME) == f"{corpus.tag}^BRAVO"
    assert first(found, STUDY_DATE) == "20230601"
    assert first(found, MODALITY) == "MR"
    assert first(found, SERIES_UID) == instance.series
    assert int(first(found, SERIES_NUMBER)) == int(instance.dataset.SeriesNumber)


def test_private_attribute_comes_with_its_creator(corpus: Corpus, base_url: str,
                                                  http: requests.Session) -> None:
    """PS3.18 10.6.3.3 and PS3.5 7.8.1: a Private Data Element asked for with includefield is
    returned with its Private Creator element (CT_small.dcm: (0043,1028) under (0043,0010))."""
    instance = corpus.bundled["CT_small.dcm"]
    creator = instance.dataset[0x00430010].value
    found = _only(http, f"{base_url}/studies/{instance.study}/series/{instance.series}/instances",
                  [("SOPInstanceUID", instance.sop), ("includefield", "00431028")])
    assert "00431028" in found
    assert first(found, "00430010") == creator


def test_metadata_has_no_group_lengths(base_url: str, http: requests.Session) -> None:
    """PS3.18 F.2.2: Group Length (gggg,0000) attributes are not in a DICOM JSON object, even
    when the stored file has one (here (0008,0000))."""
    ds = _bundled("MR_small.dcm")
    data = _with_group_length(ds)
    assert 0x00080000 in dcmread(BytesIO(data))  # what is sent has it
    _store(http, base_url, data)
    metadata = _metadata(http, f"{base_url}/{_path(ds)}")
    assert first(metadata, SOP_INSTANCE) == ds.SOPInstanceUID
    assert _group_lengths(metadata) == []


def test_instance_metadata_as_native_dicom_xml(corpus: Corpus, base_url: str,
                                               http: requests.Session) -> None:
    """PS3.18 10.4.4 (Table 10.4.4-1) and PS3.19 A.1: metadata asked for as
    multipart/related; type="application/dicom+xml" is one Native DICOM Model document per
    instance, in the PS3.19 namespace."""
    instance = corpus.ct[0]
    response = http.get(f"{base_url}/{instance.path}/metadata", headers={"Accept": XML_PARTS})
    (root,) = _native_documents(response)
    assert root.tag == f"{{{NATIVE_DICOM_MODEL}}}NativeDicomModel"
    assert first(xml_to_json(ET.tostring(root)), SOP_INSTANCE) == instance.sop


def test_search_as_native_dicom_xml(corpus: Corpus, base_url: str,
                                    http: requests.Session) -> None:
    """PS3.18 10.6.3.3 and 8.7.3.5, PS3.19 A.1: a study search asked for as
    multipart/related; type="application/dicom+xml" answers one Native DICOM Model document
    per matching study, in the PS3.19 namespace."""
    url = query_url(f"{base_url}/studies", [("PatientID", f"{corpus.tag}-A")])
    (root,) = _native_documents(http.get(url, headers={"Accept": XML_PARTS}))
    assert root.tag == f"{{{NATIVE_DICOM_MODEL}}}NativeDicomModel"
    assert first(xml_to_json(ET.tostring(root)), STUDY_UID) == corpus.study_a


def test_bulk_data_parts_carry_content_location(corpus: Corpus, base_url: str,
                                                http: requests.Session) -> None:
    """PS3.18 10.4.3.3.5: bulk data in a multipart response has a Content-Location header field
    that corresponds to the BulkDataURI of its element in the metadata."""
    instance = corpus.named("ct01")
    uri = _metadata(http, f"{base_url}/{instance.path}")[PIXEL_DATA]["BulkDataURI"]
    response = http.get(uri, headers={"Accept": ANY_TS_OCTETS})
    assert response.status_code == 200, response.text[:300]
    (part,) = decode_multipart(response)
    assert part.content == instance.dataset.PixelData
    location = part.headers.get("content-location")
    assert location, f"no Content-Location in the part headers {part.headers}"
    assert urljoin(uri, location) == uri


def test_implicit_vr_little_endian_is_not_acceptable(corpus: Corpus, base_url: str,
                                                     http: requests.Session) -> None:
    """PS3.18 8.7.3 (Implicit VR Little Endian shall not be used with web services) and 8.7.8:
    an instance asked for with transfer-syntax=1.2.840.10008.1.2 answers 406 Not Acceptable."""
    instance = corpus.named("ct02")
    accept = f"{DICOM_PARTS}; transfer-syntax={ImplicitVRLittleEndian}"
    response = http.get(f"{base_url}/{instance.path}", headers={"Accept": accept})
    assert response.status_code == 406, (response.status_code,
                                         response.headers.get("content-type"))


def _big_endian_mr(http: requests.Session, base_url: str) -> tuple[Dataset, bytes]:
    """MR_small_bigendian.dcm stored under new UIDs; its pixels as little endian bytes."""
    ds = _bundled("MR_small_bigendian.dcm")
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRBigEndian
    _store(http, base_url, _part10(ds))
    return ds, ds.pixel_array.astype("<i2").tobytes()


def test_big_endian_frames_go_out_little_endian(base_url: str, http: requests.Session) -> None:
    """PS3.18 8.7.3 (Explicit VR Big Endian shall not be used with web services) and 8.7.3.3.1:
    frames of a big endian instance, even with transfer-syntax=*, are little endian, and no
    part is labelled 1.2.840.10008.1.2.2."""
    ds, little = _big_endian_mr(http, base_url)
    response = http.get(f"{base_url}/{_path(ds)}/frames/1", headers={"Accept": ANY_TS_OCTETS})
    assert response.status_code == 200, response.text[:300]
    assert ExplicitVRBigEndian not in response.headers.get("content-type", "")
    (part,) = decode_multipart(response)
    assert ExplicitVRBigEndian not in part.content_type
    assert part.content == little


def test_big_endian_bulk_data_goes_out_little_endian(base_url: str,
                                                     http: requests.Session) -> None:
    """PS3.18 8.7.3 and 10.4.3.3.5: the Pixel Data bulk data of a big endian instance, even
    with transfer-syntax=*, is little endian and not labelled 1.2.840.10008.1.2.2."""
    ds, little = _big_endian_mr(http, base_url)
    uri = _metadata(http, f"{base_url}/{_path(ds)}")[PIXEL_DATA]["BulkDataURI"]
    response = http.get(uri, headers={"Accept": ANY_TS_OCTETS})
    assert response.status_code == 200, response.text[:300]
    assert ExplicitVRBigEndian not in response.headers.get("content-type", "")
    (part,) = decode_multipart(response)
    assert ExplicitVRBigEndian not in part.content_type
    assert part.content == little


@pytest.mark.optional
def test_person_name_case_beyond_ascii(base_url: str, http: requests.Session) -> None:
    """Statement (PS3.18 8.3.4.1 and PS3.4 C.2.2.2.1 leave case sensitivity of PN matching to
    the server): names match without regard to case by Unicode case folding, not ASCII only;
    `гусева*` finds `Гусева^Анна` (SpecificCharacterSet ISO_IR 192)."""
    ds = _bundled("MR_small.dcm")
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Гусева^Анна"
    _store(http, base_url, _part10(ds))
    exact = [("PatientID", ds.PatientID), ("PatientName", "Гусева*")]  # as stored
    assert [first(r, STUDY_UID) for r in search_results(
        http.get(query_url(f"{base_url}/studies", exact), headers={"Accept": DICOM_JSON}))] == [
        ds.StudyInstanceUID]
    folded = [("PatientID", ds.PatientID), ("PatientName", "гусева*")]
    found = search_results(http.get(query_url(f"{base_url}/studies", folded),
                                    headers={"Accept": DICOM_JSON}))
    assert [first(r, STUDY_UID) for r in found] == [ds.StudyInstanceUID]
    assert first(found[0], PATIENT_NAME) == "Гусева^Анна"
