"""Store transaction (STOW-RS): PS3.18 10.5 and the Store Instances Response Module (Annex I)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from io import BytesIO

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from conformance.corpus import Instance, Stored, build_corpus
from conformance.wire import (
    ANY_TS_DICOM,
    DICOM_JSON,
    DICOM_XML,
    FAILED_SOP_SEQUENCE,
    FAILURE_REASON,
    NATIVE_DICOM_MODEL,
    REFERENCED_SOP_CLASS,
    REFERENCED_SOP_INSTANCE,
    REFERENCED_SOP_SEQUENCE,
    RETRIEVE_URL,
    JsonDataset,
    decode_multipart,
    encode_multipart,
    first,
    media_type,
    store_response,
    values,
    xml_namespace,
)

NOT_DICOM = b"this part is not a DICOM Part 10 file\r\n" * 8


def _stow(http: requests.Session, url: str, parts: list[bytes],
          quoted: bool = True) -> tuple[requests.Response, JsonDataset]:
    body, content_type = encode_multipart(parts, quoted=quoted)
    response = http.post(url, data=body,
                         headers={"Content-Type": content_type, "Accept": DICOM_JSON})
    return response, _body(response)


def _body(response: requests.Response) -> JsonDataset:
    try:
        return store_response(response)
    except (ValueError, SyntaxError):  # an error body that is neither DICOM JSON nor XML
        return {}


def _referenced(body: JsonDataset) -> set[str]:
    return {first(item, REFERENCED_SOP_INSTANCE) for item in values(body, REFERENCED_SOP_SEQUENCE)}


def _failed(body: JsonDataset) -> list[JsonDataset]:
    return values(body, FAILED_SOP_SEQUENCE)


def _fresh() -> tuple[Instance, Instance]:
    """Two unstored instances of two different studies."""
    corpus = build_corpus()
    return corpus.ct[0], corpus.bundled["MR_small.dcm"]


def test_multipart_store_answers_200(stored: Stored) -> None:
    """PS3.18 10.5.3.1 (Table 10.5.3-1): 200 when every instance was stored."""
    assert stored.status == 200


def test_response_is_dicom_json_when_asked(stored: Stored) -> None:
    """PS3.18 10.5.1 (Accept), 10.5.3: the response honours Accept: application/dicom+json."""
    assert media_type(stored.content_type)[0] == DICOM_JSON


def test_response_references_every_instance(stored: Stored) -> None:
    """PS3.18 Annex I, Table I.1-1: one ReferencedSOPSequence item per stored instance, with its
    SOP Class, SOP Instance and Retrieve URL."""
    items = values(stored.response, REFERENCED_SOP_SEQUENCE)
    expected = {(i.sop_class, i.sop) for i in stored.corpus.all}
    got = {(first(item, REFERENCED_SOP_CLASS), first(item, REFERENCED_SOP_INSTANCE))
           for item in items}
    assert got == expected
    assert len(items) == len(expected)
    for item in items:
        assert str(first(item, RETRIEVE_URL) or "").endswith(first(item, REFERENCED_SOP_INSTANCE))


def test_response_has_retrieve_url_attribute(stored: Stored) -> None:
    """PS3.18 Annex I, Table I.1-1: the top-level Retrieve URL is Type 2 (present, maybe empty),
    even when the request spans two studies."""
    assert RETRIEVE_URL in stored.response


def test_response_has_no_failed_sequence_items(stored: Stored) -> None:
    """PS3.18 Annex I, Table I.1-1: FailedSOPSequence items only for instances that failed."""
    assert _failed(stored.response) == []


def test_single_study_response_retrieve_url(base_url: str, http: requests.Session) -> None:
    """PS3.18 Annex I, Table I.1-1: Retrieve URL is the study's URL (a Retrieve resource)."""
    instance, _ = _fresh()
    response, body = _stow(http, f"{base_url}/studies/{instance.study}", [instance.data])
    assert response.status_code == 200, response.text[:300]
    assert str(first(body, RETRIEVE_URL)).endswith(f"/studies/{instance.study}")


def test_referenced_retrieve_url_resolves(stored: Stored, http: requests.Session) -> None:
    """PS3.18 Annex I: an instance's Retrieve URL serves that instance (PS3.18 10.4)."""
    by_sop = {i.sop: i for i in stored.corpus.all}
    item = values(stored.response, REFERENCED_SOP_SEQUENCE)[0]
    response = http.get(first(item, RETRIEVE_URL), headers={"Accept": ANY_TS_DICOM})
    assert response.status_code == 200
    parts = decode_multipart(response)
    assert [p.content for p in parts] == [by_sop[first(item, REFERENCED_SOP_INSTANCE)].data]


def _stow_xml(http: requests.Session, url: str) -> tuple[Instance, requests.Response]:
    instance, _ = _fresh()
    body, content_type = encode_multipart([instance.data])
    response = http.post(url, data=body,
                         headers={"Content-Type": content_type, "Accept": DICOM_XML})
    return instance, response


def test_xml_response_when_asked(base_url: str, http: requests.Session) -> None:
    """PS3.18 10.5.1 (Accept), 10.5.3: the response honours Accept: application/dicom+xml."""
    instance, response = _stow_xml(http, f"{base_url}/studies")
    assert response.status_code == 200
    assert media_type(response.headers.get("content-type", ""))[0] == DICOM_XML
    assert _referenced(store_response(response)) == {instance.sop}


def test_xml_response_is_in_native_dicom_model_namespace(base_url: str,
                                                         http: requests.Session) -> None:
    """PS3.18 Annex I via PS3.19 A.1: application/dicom+xml is the Native DICOM Model, whose
    schema puts every element in http://dicom.nema.org/PS3.19/models/NativeDICOM."""
    _, response = _stow_xml(http, f"{base_url}/studies")
    assert response.status_code == 200
    assert xml_namespace(response.content) == NATIVE_DICOM_MODEL


def test_unquoted_type_parameter(base_url: str, http: requests.Session) -> None:
    """PS3.18 8.6.1.2 and RFC 9110 5.6.6: `type=application/dicom` unquoted means the same."""
    instance, _ = _fresh()
    response, body = _stow(http, f"{base_url}/studies", [instance.data], quoted=False)
    assert response.status_code == 200
    assert _referenced(body) == {instance.sop}


def test_non_dicom_part_fails_alone(base_url: str, http: requests.Session,
                                    observe: Callable[[str, str], None]) -> None:
    """PS3.18 10.5.3.1: a part that is not DICOM fails while the others are stored: 202, the
    good instance in ReferencedSOPSequence, the bad part in FailedSOPSequence (Annex I)."""
    instance, _ = _fresh()
    response, body = _stow(http, f"{base_url}/studies", [instance.data, NOT_DICOM])
    assert response.status_code == 202, response.text[:300]
    assert _referenced(body) == {instance.sop}
    failed = _failed(body)
    assert len(failed) == 1
    reason = first(failed[0], FAILURE_REASON)
    assert reason is not None
    observe("FailureReason for a non-DICOM part", f"0x{int(reason):04X}")


def test_study_mismatch_with_another_instance_answers_202(
        base_url: str, http: requests.Session, observe: Callable[[str, str], None]) -> None:
    """PS3.18 10.5.3.1: some stored, one refused (Study Instance UID differs from the URL's):
    202 with both sequences (Annex I)."""
    good, other_study = _fresh()
    response, body = _stow(http, f"{base_url}/studies/{good.study}",
                           [good.data, other_study.data])
    assert response.status_code == 202, response.text[:300]
    assert _referenced(body) == {good.sop}
    failed = _failed(body)
    assert [first(item, REFERENCED_SOP_INSTANCE) for item in failed] == [other_study.sop]
    observe("FailureReason for a study mismatch", f"0x{int(first(failed[0], FAILURE_REASON)):04X}")


def test_study_mismatch_alone_answers_409(base_url: str, http: requests.Session) -> None:
    """PS3.18 10.5.3.1: none stored because of a Study Instance UID mismatch is 409 Conflict,
    the instance in FailedSOPSequence with a FailureReason (Annex I)."""
    good, other_study = _fresh()
    response, body = _stow(http, f"{base_url}/studies/{good.study}", [other_study.data])
    assert response.status_code == 409, response.text[:300]
    failed = _failed(body)
    assert [first(item, REFERENCED_SOP_INSTANCE) for item in failed] == [other_study.sop]
    assert first(failed[0], FAILURE_REASON) is not None
    assert _referenced(body) == set()


def test_unsupported_content_type_answers_415(base_url: str, http: requests.Session) -> None:
    """PS3.18 10.5.3.1 (Table 10.5.3-1): 415 for a Content-Type the server does not support."""
    response = http.post(f"{base_url}/studies", data=b"hello",
                         headers={"Content-Type": "text/plain", "Accept": DICOM_JSON})
    assert response.status_code == 415


def test_dicomweb_client_store(client: DICOMwebClient) -> None:
    """PS3.18 10.5: dicomweb-client's store_instances gets every instance referenced."""
    instance, _ = _fresh()
    result = client.store_instances([instance.dataset])
    assert [str(item.ReferencedSOPInstanceUID) for item in result.ReferencedSOPSequence] == [
        instance.sop]


@pytest.mark.optional
def test_single_part_application_dicom(base_url: str, http: requests.Session) -> None:
    """Google extension to PS3.18 10.5.1: a single Part 10 body as `application/dicom`."""
    instance, _ = _fresh()
    response = http.post(f"{base_url}/studies", data=instance.data,
                         headers={"Content-Type": "application/dicom", "Accept": DICOM_JSON})
    assert response.status_code == 200, response.text[:300]
    assert _referenced(_body(response)) == {instance.sop}
    fetched = http.get(f"{base_url}/{instance.path}", headers={"Accept": ANY_TS_DICOM})
    assert [p.content for p in decode_multipart(fetched)] == [instance.data]


@pytest.mark.optional
def test_identical_restore_succeeds(stored: Stored, base_url: str,
                                    http: requests.Session) -> None:
    """Statement (Google-compatible retry semantics): storing identical bytes again is 200."""
    instance = stored.corpus.ct[0]
    response, body = _stow(http, f"{base_url}/studies", [instance.data])
    assert response.status_code == 200, response.text[:300]
    assert _referenced(body) == {instance.sop}


@pytest.mark.optional
def test_different_content_under_stored_uid_is_refused(stored: Stored, base_url: str,
                                                       http: requests.Session) -> None:
    """Statement: other bytes under a stored SOP Instance UID fail (409, FailedSOPSequence)
    and the stored copy stays byte for byte (PS3.18 leaves overwriting open)."""
    instance = stored.corpus.ct[1]
    changed = copy.deepcopy(instance.dataset)
    changed.SeriesDescription = "changed by the conformance suite"
    buffer = BytesIO()
    changed.save_as(buffer, enforce_file_format=True)
    response, body = _stow(http, f"{base_url}/studies", [buffer.getvalue()])
    assert response.status_code == 409, response.text[:300]
    assert [first(item, REFERENCED_SOP_INSTANCE) for item in _failed(body)] == [instance.sop]
    fetched = http.get(f"{base_url}/{instance.path}", headers={"Accept": ANY_TS_DICOM})
    assert [p.content for p in decode_multipart(fetched)] == [instance.data]
