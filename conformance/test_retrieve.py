"""Retrieve transaction (WADO-RS): PS3.18 10.4 instances, series, studies, metadata, bulk data.

Instances are asked for with `transfer-syntax=*` (PS3.18 8.7.3.5.2), so a conformant server
answers without transcoding and the bytes must be those that were stored.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, RLELossless

from conformance.corpus import BUNDLED, Corpus, Stored
from conformance.wire import (
    ANY_TS_DICOM,
    ANY_TS_OCTETS,
    DICOM_JSON,
    PIXEL_DATA,
    SOP_INSTANCE,
    JsonDataset,
    decode_multipart,
    first,
    media_type,
    values,
)

DICOM_PARTS = 'multipart/related; type="application/dicom"'
NAMES = ("ct01", *BUNDLED)
COMPARED = ("PatientName", "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID",
            "SOPInstanceUID", "StudyDate", "Modality", "SeriesNumber", "InstanceNumber", "Rows",
            "Columns", "BitsAllocated", "PixelSpacing", "ImagePositionPatient",
            "RescaleIntercept", "NumberOfFrames")
NUMERIC_VRS = {"DS", "IS", "US", "UL", "SS", "SL", "FL", "FD", "UV", "SV"}


def _get(http: requests.Session, url: str, accept: str) -> requests.Response:
    return http.get(url, headers={"Accept": accept})


def _metadata(http: requests.Session, url: str) -> list[JsonDataset]:
    response = _get(http, f"{url}/metadata", DICOM_JSON)
    assert response.status_code == 200, response.text[:300]
    assert media_type(response.headers.get("content-type", ""))[0] == DICOM_JSON
    body = response.json()
    assert isinstance(body, list)
    return body


def _normal(value: Any, vr: str) -> Any:
    if vr == "PN":
        return value.get("Alphabetic") if isinstance(value, dict) else str(value)
    if vr in NUMERIC_VRS:
        return float(value)
    return str(value)


def _expected(element: DataElement) -> list[Any]:
    if element.is_empty:
        return []  # Annex F.2.5: an empty value has no "Value" member
    items = list(element.value) if isinstance(element.value, MultiValue) else [element.value]
    return [_normal(v, element.VR) for v in items]


@pytest.mark.parametrize("name", NAMES)
def test_instance_is_byte_identical(corpus: Corpus, base_url: str, http: requests.Session,
                                    name: str) -> None:
    """PS3.18 10.4 and 8.7.3.5.2: with `transfer-syntax=*` the instance comes back as stored,
    one part of type application/dicom."""
    instance = corpus.named(name)
    response = _get(http, f"{base_url}/{instance.path}", ANY_TS_DICOM)
    assert response.status_code == 200, response.text[:300]
    (part,) = decode_multipart(response)
    assert media_type(part.content_type)[0] == "application/dicom"
    assert part.content == instance.data


def test_unquoted_type_parameter(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """PS3.18 8.7.3.5.2 and RFC 9110 5.6.6: `type=application/dicom` unquoted is the same."""
    instance = corpus.bundled["MR_small.dcm"]
    response = _get(http, f"{base_url}/{instance.path}",
                    "multipart/related; type=application/dicom; transfer-syntax=*")
    assert response.status_code == 200, response.text[:300]
    assert [p.content for p in decode_multipart(response)] == [instance.data]


def test_default_transfer_syntax(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """PS3.18 8.7.3.4: without a transfer-syntax parameter the instance is Explicit VR Little
    Endian (as this one was stored, so no transcoding is needed)."""
    instance = corpus.ct[0]
    response = _get(http, f"{base_url}/{instance.path}", DICOM_PARTS)
    assert response.status_code == 200, response.text[:300]
    (part,) = decode_multipart(response)
    dataset = dcmread(BytesIO(part.content))
    assert dataset.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert dataset.SOPInstanceUID == instance.sop


def test_stored_transfer_syntax_by_uid(corpus: Corpus, base_url: str,
                                      http: requests.Session) -> None:
    """PS3.18 8.7.3.5.2: naming the stored syntax's UID returns the instance as stored."""
    instance = corpus.named("ct02")
    accept = f'{DICOM_PARTS}; transfer-syntax={ExplicitVRLittleEndian}'
    response = _get(http, f"{base_url}/{instance.path}", accept)
    assert response.status_code == 200, response.text[:300]
    assert [p.content for p in decode_multipart(response)] == [instance.data]


@pytest.mark.transcoding
def test_accept_list_with_quality_values(corpus: Corpus, base_url: str,
                                         http: requests.Session) -> None:
    """PS3.18 8.7.8 and RFC 9110 12.5.1: of several acceptable media types the server picks one
    it can produce; here JPEG-LS Lossless (q=0.9) or, failing that, any syntax (q=0.5)."""
    instance = corpus.named("ct03")
    accept = (f"{DICOM_PARTS}; transfer-syntax={JPEGLSLossless}; q=0.9, "
              f"{DICOM_PARTS}; transfer-syntax=*; q=0.5")
    response = _get(http, f"{base_url}/{instance.path}", accept)
    assert response.status_code == 200, response.text[:300]
    (part,) = decode_multipart(response)
    dataset = dcmread(BytesIO(part.content))
    assert dataset.SOPInstanceUID == instance.sop
    assert dataset.file_meta.TransferSyntaxUID == JPEGLSLossless or part.content == instance.data


@pytest.mark.transcoding
def test_other_transfer_syntax_is_produced_or_refused(
        corpus: Corpus, base_url: str, http: requests.Session,
        observe: Callable[[str, str], None]) -> None:
    """PS3.18 8.7.8.2 and 8.5: a syntax other than the stored one is either produced, or
    refused with 406 Not Acceptable; never another syntax under the requested label."""
    instance = corpus.named("ct04")
    accept = f"{DICOM_PARTS}; transfer-syntax={RLELossless}"
    response = _get(http, f"{base_url}/{instance.path}", accept)
    observe("RLE Lossless for an Explicit VR instance", str(response.status_code))
    if response.status_code == 406:
        return
    assert response.status_code == 200, response.text[:300]
    (part,) = decode_multipart(response)
    dataset = dcmread(BytesIO(part.content))
    assert dataset.file_meta.TransferSyntaxUID == RLELossless
    assert dataset.SOPInstanceUID == instance.sop


def test_series_is_byte_identical(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """PS3.18 10.4 (series resource): every instance of the series, one part each, as stored."""
    url = f"{base_url}/studies/{corpus.study_a}/series/{corpus.ct[0].series}"
    response = _get(http, url, ANY_TS_DICOM)
    assert response.status_code == 200, response.text[:300]
    assert sorted(p.content for p in decode_multipart(response)) == sorted(
        i.data for i in corpus.ct)


def test_study_is_byte_identical(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """PS3.18 10.4 (study resource): every instance of the study, one part each, as stored."""
    response = _get(http, f"{base_url}/studies/{corpus.study_b}", ANY_TS_DICOM)
    assert response.status_code == 200, response.text[:300]
    assert sorted(p.content for p in decode_multipart(response)) == sorted(
        i.data for i in corpus.bundled.values())


@pytest.mark.parametrize("resource", ["study", "instance", "metadata"])
def test_missing_resource_answers_404(corpus: Corpus, base_url: str, http: requests.Session,
                                      resource: str) -> None:
    """PS3.18 10.4.3.1 and 8.5: 404 Not Found for a study or instance the server does not hold."""
    missing = f"2.25.{int.from_bytes(corpus.tag.encode(), 'big')}"
    path = {"study": f"studies/{missing}",
            "instance": f"{corpus.ct[0].path.rsplit('/', 1)[0]}/{missing}",
            "metadata": f"studies/{missing}/metadata"}[resource]
    accept = DICOM_JSON if resource == "metadata" else ANY_TS_DICOM
    assert _get(http, f"{base_url}/{path}", accept).status_code == 404


@pytest.mark.parametrize("name", ["ct01", "CT_small.dcm", "rtdose.dcm"])
def test_instance_metadata_values(corpus: Corpus, base_url: str, http: requests.Session,
                                  name: str) -> None:
    """PS3.18 10.4 (metadata resource), Annex F: the stored attributes, values as stored."""
    instance = corpus.named(name)
    (metadata,) = _metadata(http, f"{base_url}/{instance.path}")
    compared = 0
    for keyword in COMPARED:
        if keyword not in instance.dataset:
            continue
        element = instance.dataset[keyword]
        served = metadata.get(f"{tag_for_keyword(keyword):08X}", {})
        assert served.get("vr") == element.VR, keyword
        assert [_normal(v, element.VR) for v in served.get("Value", [])] == _expected(element), \
            keyword
        compared += 1
    assert compared >= 10


def test_metadata_pixel_data_is_bulk_data_uri(corpus: Corpus, base_url: str,
                                              http: requests.Session) -> None:
    """PS3.18 10.4 (metadata resource) and Annex F.2.6: Pixel Data is referenced by a
    BulkDataURI, not inlined."""
    (metadata,) = _metadata(http, f"{base_url}/{corpus.ct[0].path}")
    pixel_data = metadata.get(PIXEL_DATA, {})
    assert "BulkDataURI" in pixel_data
    assert "InlineBinary" not in pixel_data and "Value" not in pixel_data


def test_series_and_study_metadata(corpus: Corpus, base_url: str,
                                   http: requests.Session) -> None:
    """PS3.18 10.4 (metadata resources): one dataset per instance of the series or study."""
    series = _metadata(http, f"{base_url}/studies/{corpus.study_a}/series/{corpus.ct[0].series}")
    assert {first(d, SOP_INSTANCE) for d in series} == {i.sop for i in corpus.ct}
    study = _metadata(http, f"{base_url}/studies/{corpus.study_b}")
    assert {first(d, SOP_INSTANCE) for d in study} == {i.sop for i in corpus.bundled.values()}


@pytest.mark.parametrize("name", ["ct01", "CT_small.dcm"])
def test_every_bulk_data_uri_resolves(corpus: Corpus, base_url: str, http: requests.Session,
                                      name: str) -> None:
    """PS3.18 10.4 (bulkdata resource), Annex F: every top-level BulkDataURI serves the
    element's value bytes (CT_small.dcm adds private OB elements)."""
    instance = corpus.named(name)
    (metadata,) = _metadata(http, f"{base_url}/{instance.path}")
    uris = {tag: element["BulkDataURI"] for tag, element in metadata.items()
            if "BulkDataURI" in element}
    assert PIXEL_DATA in uris
    for tag, uri in uris.items():
        response = _get(http, uri, ANY_TS_OCTETS)
        assert response.status_code == 200, (tag, response.text[:300])
        (part,) = decode_multipart(response)
        assert part.content == instance.dataset[int(tag, 16)].value, tag


def test_dicomweb_client_retrieve(corpus: Corpus, client: DICOMwebClient) -> None:
    """PS3.18 10.4: dicomweb-client reads the instance and its metadata back."""
    instance = corpus.bundled["CT_small.dcm"]
    dataset = client.retrieve_instance(instance.study, instance.series, instance.sop)
    assert dataset.SOPInstanceUID == instance.sop
    assert dataset.PixelData == instance.dataset.PixelData
    metadata = client.retrieve_instance_metadata(instance.study, instance.series, instance.sop)
    assert values(metadata, SOP_INSTANCE) == [instance.sop]


@pytest.mark.optional
def test_single_part_instance(stored: Stored, base_url: str, http: requests.Session) -> None:
    """Google extension to PS3.18 10.4: an instance as a single `application/dicom` body."""
    instance = stored.corpus.bundled["examples_ybr_color.dcm"]
    response = _get(http, f"{base_url}/{instance.path}", "application/dicom; transfer-syntax=*")
    assert response.status_code == 200, response.text[:300]
    assert media_type(response.headers.get("content-type", ""))[0] == "application/dicom"
    assert response.content == instance.data
