"""Delete (not in PS3.18): the Cloud Healthcare API's DELETE on study, series and instance.

Every test here is `optional`. After a delete the resource is gone for Retrieve (PS3.18 10.4,
404) and for Search (PS3.18 10.6, no match).
"""

from __future__ import annotations

import pytest
import requests

from conformance.corpus import Corpus
from conformance.wire import ANY_TS_DICOM, DICOM_JSON, SOP_INSTANCE, first, search_results

pytestmark = pytest.mark.optional

DELETED = (200, 202, 204)


def _retrieve_status(http: requests.Session, url: str) -> int:
    return http.get(url, headers={"Accept": ANY_TS_DICOM}).status_code


def test_delete_instance(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """Google DELETE …/instances/{i}: the instance answers 404 and leaves the series' search."""
    instance = corpus.named("ct03")
    assert http.delete(f"{base_url}/{instance.path}").status_code in DELETED
    assert _retrieve_status(http, f"{base_url}/{instance.path}") == 404
    response = http.get(f"{base_url}/studies/{instance.study}/series/{instance.series}/instances",
                        headers={"Accept": DICOM_JSON})
    left = {first(r, SOP_INSTANCE) for r in search_results(response)}
    assert left == {i.sop for i in corpus.ct} - {instance.sop}


def test_delete_series(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """Google DELETE …/series/{s}: the series and its instances answer 404."""
    instance = corpus.named("MR_small.dcm")
    series_url = f"{base_url}/studies/{instance.study}/series/{instance.series}"
    assert http.delete(series_url).status_code in DELETED
    assert _retrieve_status(http, series_url) == 404
    assert _retrieve_status(http, f"{base_url}/{instance.path}") == 404
    other = corpus.named("CT_small.dcm")
    assert _retrieve_status(http, f"{base_url}/{other.path}") == 200


def test_delete_study(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """Google DELETE /studies/{s}: the study answers 404 and no longer matches a search."""
    assert http.delete(f"{base_url}/studies/{corpus.study_a}").status_code in DELETED
    assert _retrieve_status(http, f"{base_url}/studies/{corpus.study_a}") == 404
    response = http.get(f"{base_url}/studies?StudyInstanceUID={corpus.study_a}",
                        headers={"Accept": DICOM_JSON})
    assert search_results(response) == []


def test_delete_missing_study_answers_404(corpus: Corpus, base_url: str,
                                          http: requests.Session) -> None:
    """Google DELETE of a study the store does not hold: 404."""
    missing = f"2.25.{int.from_bytes(corpus.tag.encode(), 'big')}"
    assert http.delete(f"{base_url}/studies/{missing}").status_code == 404
