"""Search transaction (QIDO-RS): PS3.18 10.6, query parameters 8.3.4, matching PS3.4 C.2.2.2.

Values are sent with only the percent-encoding RFC 3986 requires (`*`, `?`, `,` and `-` raw);
`test_percent_encoded_value_is_decoded` checks the encoded spellings separately.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from conformance.corpus import CT_SLICES, Corpus
from conformance.wire import (
    DICOM_JSON,
    INSTANCE_NUMBER,
    MODALITIES_IN_STUDY,
    MODALITY,
    PATIENT_ID,
    PATIENT_NAME,
    RETRIEVE_URL,
    SERIES_RELATED_INSTANCES,
    SERIES_UID,
    SLICE_THICKNESS,
    SOP_CLASS,
    SOP_INSTANCE,
    STUDY_DATE,
    STUDY_DESCRIPTION,
    STUDY_RELATED_INSTANCES,
    STUDY_RELATED_SERIES,
    STUDY_UID,
    JsonDataset,
    first,
    media_type,
    query_url,
    search_results,
    values,
)


def _search(http: requests.Session, url: str,
            params: list[tuple[str, str]]) -> list[JsonDataset]:
    response = http.get(query_url(url, params), headers={"Accept": DICOM_JSON})
    return search_results(response)


def _studies(http: requests.Session, base_url: str, params: list[tuple[str, str]]) -> set[str]:
    return {first(r, STUDY_UID) for r in _search(http, f"{base_url}/studies", params)}


def test_single_value_matching(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """PS3.18 10.6.1 and PS3.4 C.2.2.2.1: single value matching on PatientID."""
    assert _studies(http, base_url, [("PatientID", f"{corpus.tag}-A")]) == {corpus.study_a}


def test_response_media_type(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """PS3.18 10.6.3: results as application/dicom+json, a JSON array (Annex F)."""
    response = http.get(query_url(f"{base_url}/studies", [("PatientID", f"{corpus.tag}-A")]),
                        headers={"Accept": DICOM_JSON})
    assert response.status_code == 200
    assert media_type(response.headers.get("content-type", ""))[0] == DICOM_JSON
    assert isinstance(response.json(), list)


def test_study_default_attributes(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """PS3.18 10.6.3, Table 10.6.3-3: default study attributes, computed counts included."""
    (study,) = _search(http, f"{base_url}/studies", [("PatientID", f"{corpus.tag}-A")])
    assert first(study, STUDY_UID) == corpus.study_a
    assert first(study, PATIENT_NAME) == f"{corpus.tag}^ALPHA"
    assert first(study, PATIENT_ID) == f"{corpus.tag}-A"
    assert first(study, STUDY_DATE) == "20240315"
    assert values(study, MODALITIES_IN_STUDY) == ["CT"]
    assert int(first(study, STUDY_RELATED_SERIES)) == 1
    assert int(first(study, STUDY_RELATED_INSTANCES)) == CT_SLICES
    assert str(first(study, RETRIEVE_URL)).endswith(f"/studies/{corpus.study_a}")


def test_series_of_study(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """PS3.18 10.6.1 (/studies/{study}/series), Table 10.6.3-4: one result per series."""
    results = _search(http, f"{base_url}/studies/{corpus.study_b}/series", [])
    assert {first(r, SERIES_UID) for r in results} == {i.series for i in corpus.bundled.values()}
    assert {first(r, MODALITY) for r in results} == {"CT", "MR", "RTDOSE", "OT", "US"}
    assert all(int(first(r, SERIES_RELATED_INSTANCES)) == 1 for r in results)


def test_instances_of_series(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """PS3.18 10.6.1 (/studies/{study}/series/{series}/instances), Table 10.6.3-5."""
    series = corpus.ct[0].series
    results = _search(http, f"{base_url}/studies/{corpus.study_a}/series/{series}/instances", [])
    assert {first(r, SOP_INSTANCE) for r in results} == {i.sop for i in corpus.ct}
    assert {first(r, SOP_CLASS) for r in results} == {corpus.ct[0].sop_class}
    assert sorted(int(first(r, INSTANCE_NUMBER)) for r in results) == list(
        range(1, CT_SLICES + 1))


def test_instances_of_study(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """PS3.18 10.6.1 (/studies/{study}/instances): every instance of the study."""
    results = _search(http, f"{base_url}/studies/{corpus.study_b}/instances", [])
    assert {first(r, SOP_INSTANCE) for r in results} == {i.sop for i in corpus.bundled.values()}


def test_all_series_with_patient_key(corpus: Corpus, base_url: str,
                                     http: requests.Session) -> None:
    """PS3.18 10.6.1 (/series): a relational series search on a patient attribute."""
    results = _search(http, f"{base_url}/series", [("PatientID", f"{corpus.tag}-B")])
    assert {first(r, SERIES_UID) for r in results} == {i.series for i in corpus.bundled.values()}


def test_all_instances_with_sop_uid(corpus: Corpus, base_url: str,
                                    http: requests.Session) -> None:
    """PS3.18 10.6.1 (/instances): a relational instance search on SOPInstanceUID."""
    target = corpus.ct[3]
    results = _search(http, f"{base_url}/instances", [("SOPInstanceUID", target.sop)])
    assert [first(r, SOP_INSTANCE) for r in results] == [target.sop]
    assert first(results[0], STUDY_UID) == target.study


@pytest.mark.parametrize(("key", "pattern", "expected"), [
    ("PatientName", "{tag}*", "AB"),
    ("PatientID", "{tag}*", "AB"),
    ("PatientID", "*{tail}-B", "B"),
    ("PatientID", "{tag}*A", "A"),
])
def test_wildcard_star(corpus: Corpus, base_url: str, http: requests.Session,
                       key: str, pattern: str, expected: str) -> None:
    """PS3.18 8.3.4.1 and PS3.4 C.2.2.2.4: `*` matches any sequence of characters, at the end,
    at the start or in the middle (values free of characters that need percent-encoding)."""
    value = pattern.format(tag=corpus.tag, tail=corpus.tag[4:])
    by_letter = {"A": corpus.study_a, "B": corpus.study_b}
    found = _studies(http, base_url, [(key, value)])
    assert found == {by_letter[letter] for letter in expected}


def test_wildcard_question_mark(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """PS3.18 8.3.4.1 and PS3.4 C.2.2.2.4: `?` matches exactly one character."""
    found = _studies(http, base_url, [("PatientID", f"{corpus.tag}-?")])
    assert found == {corpus.study_a, corpus.study_b}
    assert _studies(http, base_url, [("PatientID", f"{corpus.tag}?")]) == set()


@pytest.mark.parametrize(("dates", "expected"), [
    ("20240101-20241231", "A"), ("-20231231", "B"), ("20240101-", "A"), ("20230601-20240315", "AB"),
])
def test_date_range(corpus: Corpus, base_url: str, http: requests.Session,
                    dates: str, expected: str) -> None:
    """PS3.18 8.3.4.1 and PS3.4 C.2.2.2.5: closed, open-start and open-end StudyDate ranges,
    bounds inclusive."""
    by_letter = {"A": corpus.study_a, "B": corpus.study_b}
    found = _studies(http, base_url, [("PatientName", f"{corpus.tag}*"), ("StudyDate", dates)])
    assert found == {by_letter[letter] for letter in expected}


@pytest.mark.parametrize(("times", "expected"), [("100000-110000", "A"), ("-095959", "B")])
def test_time_range(corpus: Corpus, base_url: str, http: requests.Session,
                    times: str, expected: str) -> None:
    """PS3.18 8.3.4.1 and PS3.4 C.2.2.2.5: StudyTime ranges (A at 10:15, B at 09:30)."""
    by_letter = {"A": corpus.study_a, "B": corpus.study_b}
    found = _studies(http, base_url, [("PatientName", f"{corpus.tag}*"), ("StudyTime", times)])
    assert found == {by_letter[letter] for letter in expected}


def test_uid_list(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """PS3.18 8.3.4.1 and PS3.4 C.2.2.2.2: a comma-separated list of UIDs matches any of them."""
    uids = f"{corpus.study_a},{corpus.study_b}"
    assert _studies(http, base_url, [("StudyInstanceUID", uids)]) == {
        corpus.study_a, corpus.study_b}


@pytest.mark.parametrize("case", ["caret", "star", "comma"])
def test_percent_encoded_value_is_decoded(corpus: Corpus, base_url: str,
                                          http: requests.Session, case: str) -> None:
    """PS3.18 8.3.1 (RFC 3986 2.1): query values are percent-decoded before matching; `^`
    must be encoded, and clients such as requests also encode `*` and `,`."""
    value, expected = {
        "caret": (f"{corpus.tag}^ALPHA", {corpus.study_a}),
        "star": (f"{corpus.tag}*", {corpus.study_a, corpus.study_b}),
        "comma": (f"{corpus.study_a},{corpus.study_b}", {corpus.study_a, corpus.study_b}),
    }[case]
    key = "StudyInstanceUID" if case == "comma" else "PatientName"
    url = f"{base_url}/studies?{key}={quote(value, safe='')}"
    found = {first(r, STUDY_UID) for r in search_results(http.get(url))}
    assert found == expected


def test_modalities_in_study(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """PS3.18 10.6.1 (study matching keys), PS3.4 C.2.2.2: ModalitiesInStudy matches when any
    series of the study has the modality."""
    found = _studies(http, base_url, [("PatientName", f"{corpus.tag}*"),
                                      ("ModalitiesInStudy", "MR")])
    assert found == {corpus.study_b}


@pytest.mark.parametrize("field", ["StudyDescription", "00081030", "all"])
def test_includefield(corpus: Corpus, base_url: str, http: requests.Session, field: str) -> None:
    """PS3.18 8.3.4.3: includefield by keyword, by tag, or `all`."""
    (study,) = _search(http, f"{base_url}/studies",
                       [("PatientID", f"{corpus.tag}-B"), ("includefield", field)])
    assert first(study, STUDY_DESCRIPTION) == "Conformance bundled files"


def test_includefield_instance_attribute(corpus: Corpus, base_url: str,
                                         http: requests.Session) -> None:
    """PS3.18 8.3.4.3: includefield returns an attribute no default table lists (SliceThickness)."""
    series = corpus.ct[0].series
    results = _search(http, f"{base_url}/studies/{corpus.study_a}/series/{series}/instances",
                      [("includefield", "SliceThickness")])
    assert len(results) == CT_SLICES
    assert all(float(first(r, SLICE_THICKNESS)) == 1.0 for r in results)


def test_limit_and_offset(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """PS3.18 8.3.4.4: limit caps the results; offset pages through them without repeats."""
    url = f"{base_url}/studies/{corpus.study_a}/series/{corpus.ct[0].series}/instances"
    assert len(_search(http, url, [("limit", "3")])) == 3
    pages = [_search(http, url, [("limit", "4"), ("offset", str(o))]) for o in (0, 4, 8)]
    assert [len(page) for page in pages] == [4, 4, CT_SLICES - 8]
    sops = [first(r, SOP_INSTANCE) for page in pages for r in page]
    assert sorted(sops) == sorted(i.sop for i in corpus.ct)


def test_no_match(corpus: Corpus, base_url: str, http: requests.Session,
                  observe: Callable[[str, str], None]) -> None:
    """PS3.18 8.3.4.4.1 (204 No Content) or, after CP-2473, 200 with an empty array."""
    response = http.get(query_url(f"{base_url}/studies", [("PatientID", f"NONE-{corpus.tag}")]),
                        headers={"Accept": DICOM_JSON})
    if response.status_code == 204:
        assert response.content == b""
        observe("no-match answer", "204 No Content")
    else:
        assert response.status_code == 200
        assert response.json() == []
        observe("no-match answer", "200 []")


def test_unknown_attribute_answers_400(base_url: str, http: requests.Session) -> None:
    """PS3.18 10.6.3.1 (400: invalid query parameter): a key that is no DICOM attribute."""
    response = http.get(query_url(f"{base_url}/studies", [("NoSuchKeyword", "1")]),
                        headers={"Accept": DICOM_JSON})
    assert response.status_code == 400


def test_dicomweb_client_search(corpus: Corpus, client: DICOMwebClient) -> None:
    """PS3.18 10.6: dicomweb-client's search_for_series finds the study's series."""
    results = client.search_for_series(corpus.study_a, search_filters={"Modality": "CT"})
    assert [first(r, SERIES_UID) for r in results] == [corpus.ct[0].series]


@pytest.mark.optional
def test_fuzzy_matching(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """PS3.18 8.3.4.2 leaves fuzzy matching to the server; Google's (and ours): any query token
    is a case-insensitive prefix of a name component."""
    found = _studies(http, base_url, [("PatientName", corpus.tag.lower()),
                                      ("fuzzymatching", "true")])
    assert {corpus.study_a, corpus.study_b} <= found
    both = f"{corpus.study_a},{corpus.study_b}"
    found = _studies(http, base_url, [("StudyInstanceUID", both), ("PatientName", "bra"),
                                      ("fuzzymatching", "true")])
    assert found == {corpus.study_b}
