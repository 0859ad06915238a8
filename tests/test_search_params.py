"""Search (QIDO-RS) parameters against a live server: what is refused with 400 (and says why),
what is ignored, how results are shaped, and the exact queries OHIF sends.
"""

from io import BytesIO
from typing import Any

import pydicom
import pytest
import requests

from tests.conftest import LiveServer
from tests.dataset_factories import ct_series

DICOM_JSON = "application/dicom+json"
STUDY_UIDS = {
    "alpha": "1.2.826.0.1.3680043.8.498.9001",
    "beta": "1.2.826.0.1.3680043.8.498.9002",
    "gamma": "1.2.826.0.1.3680043.8.498.9003",
}
OHIF_STUDY_LIST = ("limit=101&offset=0&fuzzymatching=false"
                   "&includefield=00081030%2C00080060%2C00080090%2C00100030")


def _series(study: str, patient: str, patient_id: str, modality: str, number: int,
            count: int, description: str) -> list[bytes]:
    out = []
    for data in ct_series(count, size=8, patient=patient, study_uid=STUDY_UIDS[study]):
        ds = pydicom.dcmread(BytesIO(data))
        ds.PatientID = patient_id
        ds.Modality = modality
        ds.SeriesNumber = number
        ds.StudyDescription = description
        ds.PatientBirthDate = {"alpha": "19800101", "beta": "19900202"}.get(study, "")
        buffer = BytesIO()
        ds.save_as(buffer)
        out.append(buffer.getvalue())
    return out


@pytest.fixture(scope="module")
def server(shared_server: LiveServer) -> LiveServer:
    """Three studies: alpha (CT 2 + MR 2), beta (MR 3), gamma (CT 1)."""
    files = [
        *_series("alpha", "Phantom^Alpha", "PID-A", "CT", 1, 2, "Head phantom"),
        *_series("alpha", "Phantom^Alpha", "PID-A", "MR", 2, 2, "Head phantom"),
        *_series("beta", "PHANTOM^Beta", "PID-B", "MR", 1, 3, "Knee"),
        *_series("gamma", "Other^Gamma", "PID-C", "CT", 1, 1, "Chest"),
    ]
    for data in files:
        stored = requests.post(f"{shared_server.dicomweb}/studies", data=data,
                               headers={"Content-Type": "application/dicom"})
        assert stored.status_code == 200, stored.text
    return shared_server


def get(server: LiveServer, path: str, query: str | dict[str, Any] | None = None,
        accept: str | None = None) -> requests.Response:
    """GET with the query string exactly as given when it is a string."""
    url = f"{server.dicomweb}{path}"
    if isinstance(query, str):
        url, query = f"{url}?{query}", None
    return requests.get(url, params=query, headers={"Accept": accept} if accept else {})


def results(response: requests.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(("application/dicom+json",
                                                        "application/json"))
    body = response.json()
    assert isinstance(body, list)
    return body


def value(result: dict[str, Any], tag: str) -> Any:
    return result[tag]["Value"][0]


def study_uids(response: requests.Response) -> set[str]:
    if response.status_code == 204:
        return set()
    return {value(r, "0020000D") for r in results(response)}


def assert_400(response: requests.Response, *fragments: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == 400
    assert error["status"] == "INVALID_ARGUMENT"
    for fragment in fragments:
        assert fragment in error["message"]


# -- Refused parameters -----------------------------------------------------------------------


@pytest.mark.parametrize(("path", "key"), [
    ("/studies", "Foo"),
    ("/studies", "PatientsName"),
    ("/studies", "patientname"),
    ("/series", "NotAKeyword"),
    ("/instances", "0010002G"),
    ("/instances", "<script>"),
])
def test_unknown_key_is_400_naming_it(server: LiveServer, path: str, key: str) -> None:
    assert_400(get(server, path, {key: "x"}), key)


def test_empty_key_is_400_saying_so(server: LiveServer) -> None:
    assert_400(get(server, "/studies", {"": "x"}), "empty name")


@pytest.mark.parametrize("field", ["Foo", "0008103", "all2"])
def test_unknown_includefield_is_400_naming_it(server: LiveServer, field: str) -> None:
    assert_400(get(server, "/studies", {"includefield": f"PatientID,{field}"}), field)


@pytest.mark.parametrize(("key", "bad"), [
    ("limit", "0"), ("limit", "-1"), ("limit", "abc"), ("limit", "1.5"), ("limit", ""),
    ("offset", "-1"), ("offset", "x"), ("offset", "2.0"), ("offset", ""),
])
def test_limit_and_offset_must_be_integers_in_range(server: LiveServer, key: str,
                                                    bad: str) -> None:
    assert_400(get(server, "/studies", {key: bad}), key)


@pytest.mark.parametrize(("path", "query"), [
    ("/studies", {"StudyInstanceUID": "1.2.abc"}),
    ("/studies", {"StudyInstanceUID": f"{STUDY_UIDS['alpha']},1..2"}),
    ("/studies", {"0020000D": "1" * 65}),
    ("/series", {"SeriesInstanceUID": "1.2.3x"}),
    ("/instances", {"SOPInstanceUID": "../../etc"}),
    ("/instances", {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.2 "
                                   "OR 1=1"}),
])
def test_invalid_uid_in_a_match_is_400(server: LiveServer, path: str,
                                       query: dict[str, str]) -> None:
    assert_400(get(server, path, query), "UID")


@pytest.mark.parametrize("key", ["ReferencedSeriesSequence.SeriesInstanceUID",
                                 "00081115.0020000E", "RequestAttributesSequence.AccessionNumber"])
def test_sequence_keys_are_400(server: LiveServer, key: str) -> None:
    assert_400(get(server, "/studies", {key: "1.2.3"}), key)


@pytest.mark.parametrize(("path", "key", "value"), [
    ("/studies", "SOPInstanceUID", "1.2.3"),
    ("/studies", "SeriesInstanceUID", "1.2.3"),
    ("/studies", "Modality", "CT"),
    ("/studies", "InstanceNumber", "1"),
    ("/studies", "00080018", "1.2.3"),
    ("/series", "SOPInstanceUID", "1.2.3"),
    ("/series", "00200013", "1"),
    (f"/studies/{STUDY_UIDS['alpha']}/series", "SOPClassUID", "1.2.840.10008.5.1.4.1.1.2"),
])
def test_keys_below_the_query_level_are_400(server: LiveServer, path: str, key: str,
                                            value: str) -> None:
    assert_400(get(server, path, {key: value}), key)


@pytest.mark.parametrize("path", ["/studies/1.2.abc/series", "/studies/1.2.abc/instances",
                                  f"/studies/{STUDY_UIDS['alpha']}/series/x.y/instances"])
def test_invalid_uid_in_the_path_is_400(server: LiveServer, path: str) -> None:
    assert_400(get(server, path), "UID")


# -- Accepted parameters ----------------------------------------------------------------------


def test_all_studies(server: LiveServer) -> None:
    assert study_uids(get(server, "/studies")) == set(STUDY_UIDS.values())


def test_no_match_is_204_with_an_empty_body(server: LiveServer) -> None:
    for path, query in [("/studies", {"PatientID": "NOBODY"}),
                        ("/series", {"Modality": "US"}),
                        ("/instances", {"SOPInstanceUID": "1.2.3.4"}),
                        ("/studies", {"offset": "1000"}),
                        (f"/studies/{STUDY_UIDS['beta']}/series", {"Modality": "CT"}),
                        ("/studies/1.2.3/series", None)]:
        response = get(server, path, query)
        assert response.status_code == 204, (path, query)
        assert response.content == b""


def test_keys_by_keyword_and_by_tag_agree(server: LiveServer) -> None:
    by_keyword = get(server, "/studies", {"PatientID": "PID-B"})
    by_tag = get(server, "/studies", "00100020=PID-B")
    assert study_uids(by_keyword) == study_uids(by_tag) == {STUDY_UIDS["beta"]}
    assert study_uids(get(server, "/studies", "0020000d=" + STUDY_UIDS["gamma"])) == {
        STUDY_UIDS["gamma"]}


@pytest.mark.parametrize(("pattern", "expected"), [
    ("*phan*", {"alpha", "beta"}),
    ("*PHAN*", {"alpha", "beta"}),
    ("phantom^*", {"alpha", "beta"}),
    ("*gamma", {"gamma"}),
    ("phantom^alph?", {"alpha"}),
    ("*", {"alpha", "beta", "gamma"}),
    ("*zzz*", set()),
])
def test_patient_name_wildcards_ignore_case(server: LiveServer, pattern: str,
                                            expected: set[str]) -> None:
    found = study_uids(get(server, "/studies", {"PatientName": pattern}))
    assert found == {STUDY_UIDS[s] for s in expected}


@pytest.mark.parametrize(("query", "expected"), [
    ({"StudyDescription": "*phantom*"}, {"alpha"}),  # OHIF sends what the user typed
    ({"StudyDescription": "KNEE*"}, {"beta"}),
    ({"StudyDescription": "knee"}, set()),  # single values stay exact (PS3.4 C.2.2.2.1)
    ({"PatientID": "pid-?"}, {"alpha", "beta", "gamma"}),
    ({"ModalitiesInStudy": "c*"}, set()),  # codes match exactly, wildcards included
    ({"ModalitiesInStudy": "C*"}, {"alpha", "gamma"}),
])
def test_text_wildcards_ignore_case_codes_do_not(server: LiveServer, query: dict[str, str],
                                                 expected: set[str]) -> None:
    found = study_uids(get(server, "/studies", query))
    assert found == {STUDY_UIDS[s] for s in expected}


def test_ohif_study_list_query(server: LiveServer) -> None:
    response = get(server, "/studies", OHIF_STUDY_LIST)
    found = results(response)
    assert "warning" not in response.headers
    assert {value(r, "0020000D") for r in found} == set(STUDY_UIDS.values())
    for result in found:
        for tag in ("00081030", "00080060", "00080090", "00100030"):
            assert "vr" in result[tag], tag
    alpha = next(r for r in found if value(r, "0020000D") == STUDY_UIDS["alpha"])
    assert alpha["00081030"]["Value"] == ["Head phantom"]
    assert alpha["00080060"]["Value"] == ["CT", "MR"]
    assert alpha["00100030"]["Value"] == ["19800101"]


def test_ohif_study_list_query_with_a_name_filter(server: LiveServer) -> None:
    found = study_uids(get(server, "/studies", OHIF_STUDY_LIST + "&PatientName=*phan*"))
    assert found == {STUDY_UIDS["alpha"], STUDY_UIDS["beta"]}


def test_encoded_and_plain_commas_and_repeated_includefield_agree(server: LiveServer) -> None:
    base = f"StudyInstanceUID={STUDY_UIDS['alpha']}"
    encoded = results(get(server, "/studies", base + "&includefield=00081030%2C00100021"))
    plain = results(get(server, "/studies", base + "&includefield=00081030,00100021"))
    repeated = results(get(server, "/studies",
                           base + "&includefield=StudyDescription&includefield=00100021"))
    assert encoded == plain == repeated
    assert encoded[0]["00081030"] == {"vr": "LO", "Value": ["Head phantom"]}
    assert encoded[0]["00100021"] == {"vr": "LO"}  # asked for, absent: present without value


def test_includefield_all(server: LiveServer) -> None:
    [everything] = results(get(server, "/studies", {"includefield": "all",
                                                    "StudyInstanceUID": STUDY_UIDS["alpha"]}))
    [default] = results(get(server, "/studies", {"StudyInstanceUID": STUDY_UIDS["alpha"]}))
    assert set(default) < set(everything)
    assert everything["00081030"]["Value"] == ["Head phantom"]
    assert everything["00080061"]["Value"] == ["CT", "MR"]


def test_includefield_names_at_most_200_attributes(server: LiveServer) -> None:
    """`max_includefields`: the attributes named by every includefield together, `all`
    counting as one; one more is 400 naming the limit."""
    query = (f"StudyInstanceUID={STUDY_UIDS['alpha']}&includefield=all"
             f"&includefield={'%2C'.join(['StudyDescription'] * 199)}")
    assert results(get(server, "/studies", query))[0]["00081030"]["Value"] == ["Head phantom"]
    assert_400(get(server, "/studies", query + "&includefield=PatientAge"),
               "includefield", "at most 200")


def test_google_system_parameters_are_ignored(server: LiveServer) -> None:
    query = {"access_token": "ya29.token", "alt": "json", "prettyPrint": "false",
             "quotaUser": "someone", "fields": "x", "$.xgafv": "2", "key": "k",
             "callback": "cb", "oauth_token": "t", "uploadType": "media",
             "upload_protocol": "raw", "PatientID": "PID-C"}
    assert study_uids(get(server, "/studies", query)) == {STUDY_UIDS["gamma"]}


def test_fuzzymatching_values(server: LiveServer) -> None:
    assert study_uids(get(server, "/studies", {"PatientName": "phan",
                                               "fuzzymatching": "true"})) == {
        STUDY_UIDS["alpha"], STUDY_UIDS["beta"]}
    assert get(server, "/studies", {"PatientName": "phan",
                                    "fuzzymatching": "false"}).status_code == 204


def test_limit_offset_and_the_warning_header(server: LiveServer) -> None:
    everything = results(get(server, "/instances"))
    assert len(everything) == 8
    pages = []
    for offset in range(0, 8, 3):
        response = get(server, "/instances", {"limit": 3, "offset": offset})
        page = results(response)
        pages.extend(page)
        more = offset + 3 < 8
        assert ("warning" in response.headers) is more, offset
        if more:
            assert response.headers["warning"].startswith("299 ")
    assert pages == everything
    exact = get(server, "/instances", {"limit": 8})
    assert len(results(exact)) == 8
    assert "warning" not in exact.headers
    huge = get(server, "/instances", {"limit": 10**12})
    assert len(results(huge)) == 8


def test_an_offset_beyond_any_integer_is_no_match_not_an_error(server: LiveServer) -> None:
    for offset in ("99999999999999999999999", str(2**63 - 1), str(2**63)):
        response = get(server, "/studies", {"offset": offset})
        assert response.status_code == 204, response.text


@pytest.mark.parametrize(("query", "count"), [
    ({"Rows": "8"}, 8),
    ({"00280010": "8"}, 8),
    ({"Rows": "9"}, 0),
    ({"SliceThickness": "1"}, 8),
    ({"SliceThickness": "1.0"}, 8),
    ({"WindowCenter": "40"}, 8),
    ({"InstanceNumber": "2"}, 3),
    ({"InstanceNumber": "2", "PatientID": "PID-A"}, 2),
])
def test_numeric_attributes_match_by_value(server: LiveServer, query: dict[str, str],
                                           count: int) -> None:
    """US/DS/IS values are JSON numbers in DICOM JSON; "8" and "1.0" still match them."""
    response = get(server, "/instances", query)
    if count:
        assert len(results(response)) == count
    else:
        assert response.status_code == 204


@pytest.mark.parametrize(("key", "bad"), [("Rows", "eight"), ("InstanceNumber", "1_0"),
                                          ("SliceThickness", "nan"), ("00280011", "8px")])
def test_a_non_number_for_a_numeric_attribute_is_400(server: LiveServer, key: str,
                                                     bad: str) -> None:
    assert_400(get(server, "/instances", {key: bad}), key, bad)


def test_uid_lists(server: LiveServer) -> None:
    two = [STUDY_UIDS["alpha"], STUDY_UIDS["gamma"]]
    for separator in (",", "\\"):
        found = study_uids(get(server, "/studies", {"StudyInstanceUID": separator.join(two)}))
        assert found == set(two)


def test_empty_value_is_universal_matching_and_returns_the_key(server: LiveServer) -> None:
    found = results(get(server, "/studies", {"PatientComments": ""}))
    assert len(found) == 3
    assert all(r["00104000"] == {"vr": "LT"} for r in found)


@pytest.mark.parametrize("accept", [None, "*/*", DICOM_JSON, "application/json",
                                    "application/dicom+json, application/json;q=0.5"])
def test_json_accept_variants(server: LiveServer, accept: str | None) -> None:
    assert len(results(get(server, "/studies", accept=accept))) == 3


def test_xml_only_accept_is_406(server: LiveServer) -> None:
    response = get(server, "/studies", accept="application/dicom+xml")
    assert response.status_code == 406
    assert response.json()["error"]["code"] == 406


# -- Result shape -----------------------------------------------------------------------------


def _assert_shape(result: dict[str, Any]) -> None:
    keys = list(result)
    assert keys == sorted(keys)
    for key, element in result.items():
        assert len(key) == 8 and key == key.upper() and int(key, 16) >= 0, key
        assert isinstance(element, dict) and "vr" in element, key
        assert len(element["vr"]) == 2, key


def test_study_level_shape_and_computed_attributes(server: LiveServer) -> None:
    for result in results(get(server, "/studies")):
        _assert_shape(result)
        study = value(result, "0020000D")
        assert result["00081190"]["Value"] == [f"{server.dicomweb}/studies/{study}"]
        assert result["00080061"]["vr"] == "CS"
        assert result["00201206"]["vr"] == result["00201208"]["vr"] == "IS"
        assert result["00080056"]["Value"] == ["ONLINE"]
    by_uid = {value(r, "0020000D"): r for r in results(get(server, "/studies"))}
    alpha, beta = by_uid[STUDY_UIDS["alpha"]], by_uid[STUDY_UIDS["beta"]]
    assert alpha["00080061"]["Value"] == ["CT", "MR"]
    assert (value(alpha, "00201206"), value(alpha, "00201208")) == (2, 4)
    assert beta["00080061"]["Value"] == ["MR"]
    assert (value(beta, "00201206"), value(beta, "00201208")) == (1, 3)
    assert by_uid[STUDY_UIDS["gamma"]]["00100010"]["Value"] == [{"Alphabetic": "Other^Gamma"}]


def test_series_level_shape(server: LiveServer) -> None:
    found = results(get(server, f"/studies/{STUDY_UIDS['alpha']}/series"))
    assert [value(r, "00080060") for r in found] == ["CT", "MR"]
    for result in found:
        _assert_shape(result)
        series = value(result, "0020000E")
        assert value(result, "00201209") == 2
        assert result["00081190"]["Value"] == [
            f"{server.dicomweb}/studies/{STUDY_UIDS['alpha']}/series/{series}"]


def test_instance_level_shape(server: LiveServer) -> None:
    series = value(results(get(server, f"/studies/{STUDY_UIDS['beta']}/series"))[0],
                   "0020000E")
    found = results(get(server, f"/studies/{STUDY_UIDS['beta']}/series/{series}/instances"))
    assert [value(r, "00200013") for r in found] == [1, 2, 3]
    for result in found:
        _assert_shape(result)
        sop = value(result, "00080018")
        assert result["00081190"]["Value"] == [
            f"{server.dicomweb}/studies/{STUDY_UIDS['beta']}/series/{series}/instances/{sop}"]
        assert value(result, "00280010") == 8


def test_study_attributes_match_at_lower_levels(server: LiveServer) -> None:
    found = results(get(server, "/instances", {"PatientName": "*gamma"}))
    assert len(found) == 1
    found = results(get(server, "/series", {"PatientID": "PID-A", "Modality": "MR"}))
    assert len(found) == 1 and value(found[0], "0020000D") == STUDY_UIDS["alpha"]


def test_google_path_searches_the_same_store(server: LiveServer) -> None:
    google = requests.get(f"{server.google()}/studies", params={"PatientID": "PID-A"})
    [result] = results(google)
    assert result["00081190"]["Value"] == [f"{server.google()}/studies/{STUDY_UIDS['alpha']}"]
    missing = server.google("projects/x/locations/y/datasets/z/dicomStores/w")
    response = requests.get(f"{missing}/studies")
    assert response.status_code == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"


def test_a_study_without_modalities_has_no_empty_modalities_in_study(
        live_server: LiveServer) -> None:
    """A computed list with nothing in it is left out: OHIF v3 reads an empty
    ModalitiesInStudy's Value and its whole study list fails (tests/test_viewer.py)."""
    ds = pydicom.dcmread(BytesIO(ct_series(1, size=8)[0]))
    del ds.Modality
    body = BytesIO()
    ds.save_as(body)
    stored = requests.post(f"{live_server.dicomweb}/studies", data=body.getvalue(),
                           headers={"Content-Type": "application/dicom"})
    assert stored.status_code == 200
    [found] = requests.get(f"{live_server.dicomweb}/studies",
                           params={"includefield": "00080060"}).json()
    assert "00080061" not in found and "00080060" not in found
    assert found["00201208"]["Value"] == [1]
