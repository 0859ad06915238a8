"""The `google` store profile against the `full` one: each behaviour in which a store created
through the management API (google by default) answers as Google does, and the default
store (full) as PS3.18 does."""

from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO

import pydicom
import pytest
import requests
from PIL import Image

from tests.conftest import LiveServer, run_server
from tests.dataset_factories import corpus_bytes, ct_series
from tests.multipart_parts import parse_multipart

DATASET = "projects/g/locations/us-central1/datasets/d"


@dataclass(frozen=True)
class Stores:
    """DICOMweb roots of a google store and of the full default store, each holding the same
    two studies (a CT series and CT_small)."""

    google: str
    full: str
    ct: pydicom.Dataset


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    data = tmp_path_factory.mktemp("google") / "data"
    with run_server(data) as running:
        base = f"http://127.0.0.1:{running.port}"
        assert requests.post(f"{base}/v1/{DATASET.rsplit('/datasets/', 1)[0]}/datasets",
                             params={"datasetId": "d"}, json={}).ok
        made = requests.post(f"{base}/v1/{DATASET}/dicomStores",
                             params={"dicomStoreId": "s"}, json={}).json()
        assert made["labels"]["pacs-profile"] == "google"
        roots = Stores(f"{base}/v1/{made['name']}/dicomWeb", f"{base}/dicomweb",
                       pydicom.dcmread(BytesIO(corpus_bytes("CT_small.dcm"))))
        for root in (roots.google, roots.full):
            for body in (corpus_bytes("CT_small.dcm"), ct_series(1, size=8)[0]):
                assert requests.post(f"{root}/studies", data=body,
                                     headers={"Content-Type": "application/dicom"}).ok
        yield roots


def _instance(stores: Stores, root: str) -> str:
    ct = stores.ct
    return (f"{root}/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}"
            f"/instances/{ct.SOPInstanceUID}")


def test_more_results_carry_no_warning_on_google(stores: Stores) -> None:
    """Spec 3.5: Google never sends Warning; PS3.18 8.3.4.4 has the full store say so."""
    google = requests.get(f"{stores.google}/studies?limit=1")
    full = requests.get(f"{stores.full}/studies?limit=1")
    assert len(google.json()) == len(full.json()) == 1
    assert "Warning" not in google.headers and "Warning" in full.headers


@pytest.mark.parametrize(("key", "value"), [("StudyDescription", "X"),
                                            ("SeriesDescription", "X"),
                                            ("SOPClassUID", "1.2.3")])
def test_google_searches_only_its_documented_keys(stores: Stores, key: str,
                                                  value: str) -> None:
    """Spec 3.2: other keys answer 400 on Google; a full store matches any attribute."""
    google = requests.get(f"{stores.google}/instances", params={key: value})
    assert google.status_code == 400
    assert "unknown/unsupported QIDO attribute" in google.json()["error"]["message"]
    assert requests.get(f"{stores.full}/instances", params={key: value}).status_code == 204
    assert requests.get(f"{stores.google}/instances",
                        params={"PatientID": stores.ct.PatientID}).status_code == 200


def test_store_xml_root_is_bare_on_google(stores: Stores) -> None:
    """Seed 002's response has a bare <NativeDicomModel>; PS3.19 puts it in a namespace."""
    body = corpus_bytes("MR_small.dcm")
    google = requests.post(f"{stores.google}/studies", data=body,
                           headers={"Content-Type": "application/dicom"})
    full = requests.post(f"{stores.full}/studies", data=body,
                         headers={"Content-Type": "application/dicom"})
    assert google.content.startswith(b"<NativeDicomModel>")
    assert full.content.startswith(b'<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/')


def test_a_partial_store_is_409_on_google(stores: Stores) -> None:
    """Spec 5.2: Google answers 409 when any instance fails; PS3.18 10.5.3 has 202."""
    boundary = "b0undary"
    good = ct_series(1, size=8)[0]
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + good +
            f"\r\n--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() +
            b"not dicom" * 20 + f"\r\n--{boundary}--\r\n".encode())
    headers = {"Content-Type": f'multipart/related; type="application/dicom"; '
                               f"boundary={boundary}"}
    assert requests.post(f"{stores.google}/studies", data=body, headers=headers
                         ).status_code == 409
    assert requests.post(f"{stores.full}/studies", data=body, headers=headers
                         ).status_code == 202


def test_google_renders_instances_and_frames_only(stores: Stores) -> None:
    """Spec 4.3: rendered for instances and frames, no thumbnails; full has both at every
    level."""
    instance = _instance(stores, stores.google)
    assert requests.get(f"{instance}/rendered").status_code == 200
    assert requests.get(f"{instance}/frames/1/rendered").status_code == 200
    study = instance.split("/series/")[0]
    for url in (f"{study}/rendered", f"{instance}/thumbnail"):
        assert requests.get(url).status_code == 404, url
    full = _instance(stores, stores.full)
    for url in (f"{full.split('/series/')[0]}/rendered", f"{full}/thumbnail"):
        assert requests.get(url).status_code == 200, url


def test_google_produces_implicit_vr_little_endian(stores: Stores) -> None:
    """Spec 4.1 lists 1.2.840.10008.1.2 among Google's syntaxes; PS3.18 8.7.3 keeps it off
    the web, so a full store refuses it."""
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2'
    google = requests.get(_instance(stores, stores.google), headers={"Accept": accept})
    assert google.status_code == 200
    [(_, body)] = parse_multipart(google)
    back = pydicom.dcmread(BytesIO(body))
    assert back.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    assert back.pixel_array.tobytes() == stores.ct.pixel_array.tobytes()
    assert requests.get(_instance(stores, stores.full), headers={"Accept": accept}
                        ).status_code == 406


def test_a_store_made_full_by_its_label(live_server: LiveServer) -> None:
    base = live_server.base
    requests.post(f"{base}/v1/{DATASET.rsplit('/datasets/', 1)[0]}/datasets",
                  params={"datasetId": "d"}, json={}).raise_for_status()
    made = requests.post(f"{base}/v1/{DATASET}/dicomStores", params={"dicomStoreId": "f"},
                         json={"labels": {"pacs-profile": "full"}}).json()
    assert made["labels"] == {"pacs-profile": "full"}
    web = f"{base}/v1/{made['name']}/dicomWeb"
    assert requests.get(f"{web}/instances", params={"StudyDescription": "x"}
                        ).status_code == 204
    wrong = requests.post(f"{base}/v1/{DATASET}/dicomStores", params={"dicomStoreId": "w"},
                          json={"labels": {"pacs-profile": "fast"}})
    assert wrong.status_code == 400


def test_study_and_series_deletes_are_operations_on_google(stores: Stores) -> None:
    """Spec 1.3: Google answers a study or series delete with the name of a long-running
    operation, polled under the dataset until done; an instance delete, and every delete on
    a full store, answers `{}`."""
    series = ct_series(2, size=8)
    for body in series:
        assert requests.post(f"{stores.google}/studies", data=body,
                             headers={"Content-Type": "application/dicom"}).ok
    ds = pydicom.dcmread(BytesIO(series[0]))
    one = pydicom.dcmread(BytesIO(series[1]))
    study = f"{stores.google}/studies/{ds.StudyInstanceUID}"
    assert requests.delete(f"{study}/series/{one.SeriesInstanceUID}/instances/"
                           f"{one.SOPInstanceUID}").json() == {}
    answer = requests.delete(study).json()
    assert list(answer) == ["name"]
    assert answer["name"].startswith(f"{DATASET}/operations/")
    base = stores.google.split("/v1/")[0]
    operation = requests.get(f"{base}/v1/{answer['name']}").json()
    assert operation["done"] is True
    assert operation["metadata"]["apiMethodName"] == \
        "google.cloud.healthcare.v1.dicomweb.DicomWebService.DeleteStudy"
    assert operation["response"] == {"@type": "type.googleapis.com/google.protobuf.Empty"}
    assert requests.get(f"{stores.google}/studies",
                        params={"StudyInstanceUID": ds.StudyInstanceUID}).status_code == 204
    listed = requests.get(f"{base}/v1/{DATASET}/operations").json()["operations"]
    assert answer["name"] in [op["name"] for op in listed]
    mine = ct_series(1, size=8)[0]
    assert requests.post(f"{stores.full}/studies", data=mine,
                         headers={"Content-Type": "application/dicom"}).ok
    full_study = pydicom.dcmread(BytesIO(mine)).StudyInstanceUID
    assert requests.delete(f"{stores.full}/studies/{full_study}").json() == {}


def test_every_store_failure_is_272_on_google(stores: Stores) -> None:
    """Spec 5.2: Google reports FailureReason 272 (0x0110) whatever failed, with the detail;
    a full store gives each failure its own reason (0xC000 for what is not DICOM)."""
    for root, reason in ((stores.google, 0x0110), (stores.full, 0xC000)):
        answer = requests.post(f"{root}/studies", data=b"not dicom" * 20,
                               headers={"Content-Type": "application/dicom",
                                        "Accept": "application/dicom+json"})
        assert answer.status_code == 409
        [failed] = answer.json()["00081198"]["Value"]
        assert failed["00081197"]["Value"] == [reason]
        assert "DICOM" in failed["00091097"]["Value"][0]


@pytest.mark.parametrize(("params", "google", "full"), [
    ({"PatientName": "compressed*"}, 204, 200),  # no wildcards on Google: matched literally
    ({"StudyInstanceUID": "{ct},1.2.3"}, 204, 200),  # nor UID lists
    ({"PatientName": "ct1", "fuzzymatching": "true"}, 200, 200),  # fuzzy names on both
    ({"StudyDate": "20000101-20991231"}, 200, 200),  # StudyDate ranges on both
])
def test_google_matches_exactly_but_for_dates_and_fuzzy_names(stores: Stores,
                                                              params: dict[str, str],
                                                              google: int, full: int) -> None:
    """Spec 3.3: only single value exact matching, except StudyDate ranges and PatientName
    fuzzy matching; a full store has every matching type of PS3.4 C.2.2.2."""
    ct = stores.ct
    asked = {k: v.format(ct=ct.StudyInstanceUID) for k, v in params.items()}
    if "PatientName" in asked:
        asked["PatientID"] = ct.PatientID
    assert requests.get(f"{stores.google}/studies", params=asked).status_code == google
    assert requests.get(f"{stores.full}/studies", params=asked).status_code == full


def test_google_refuses_a_repeated_key(stores: Stores) -> None:
    """Spec 3.3: repeating a key answers 400 on Google (a full store ANDs them)."""
    repeated = [("StudyInstanceUID", stores.ct.StudyInstanceUID)] * 2
    assert requests.get(f"{stores.google}/studies", params=repeated).status_code == 400
    assert requests.get(f"{stores.full}/studies", params=repeated).status_code == 200
    both = [("PatientID", stores.ct.PatientID), ("includefield", "PatientID")]
    assert requests.get(f"{stores.google}/studies", params=both).status_code == 200


def test_v1beta1_put_replaces_what_post_refuses(stores: Stores) -> None:
    """The v1beta1 upsert (PUT …/studies): an instance with the SOP Instance UID of a stored
    one but other content replaces it, where POST answers 409 and keeps the stored copy;
    v1 has no PUT."""
    original = ct_series(1, size=8)[0]
    ds = pydicom.dcmread(BytesIO(original))
    ds.PatientName = "Changed^Name"
    changed = BytesIO()
    ds.save_as(changed, enforce_file_format=True)
    v1beta1 = stores.google.replace("/v1/", "/v1beta1/")
    headers = {"Content-Type": "application/dicom"}
    assert requests.post(f"{v1beta1}/studies", data=original, headers=headers).ok
    assert requests.post(f"{v1beta1}/studies", data=changed.getvalue(),
                         headers=headers).status_code == 409
    url = (f"{v1beta1}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
           f"/instances/{ds.SOPInstanceUID}")
    as_stored = {"Accept": "application/dicom; transfer-syntax=*"}
    assert requests.get(url, headers=as_stored).content == original
    replaced = requests.put(f"{v1beta1}/studies/{ds.StudyInstanceUID}",
                            data=changed.getvalue(), headers=headers)
    assert replaced.status_code == 200, replaced.text
    assert requests.get(url, headers=as_stored).content == changed.getvalue()
    [found] = requests.get(f"{v1beta1}/instances",
                           params={"StudyInstanceUID": ds.StudyInstanceUID}).json()
    assert found["00100010"]["Value"] == [{"Alphabetic": "Changed^Name"}]
    assert requests.put(f"{stores.google}/studies", data=original,
                        headers=headers).status_code == 405
    assert requests.put(f"{stores.full}/studies", data=original,
                        headers=headers).status_code == 405


def test_v1beta1_update_metadata_applies_a_json_patch(stores: Stores) -> None:
    """v1beta1 updateMetadata: a JSON Patch over each instance's DICOM JSON; the study's is a
    long-running operation, an instance's answers {}; the pixels and UIDs stay."""
    series = ct_series(2, size=8)
    v1beta1 = stores.google.replace("/v1/", "/v1beta1/")
    for body in series:
        assert requests.post(f"{v1beta1}/studies", data=body,
                             headers={"Content-Type": "application/dicom"}).ok
    ds = pydicom.dcmread(BytesIO(series[0]))
    study = f"{v1beta1}/studies/{ds.StudyInstanceUID}"
    patch = [{"op": "replace", "path": "/00100010",
              "value": {"vr": "PN", "Value": [{"Alphabetic": "Renamed^Patient"}]}},
             {"op": "add", "path": "/00081030",
              "value": {"vr": "LO", "Value": ["Updated"]}}]
    operation = requests.patch(f"{study}/metadata", json=patch).json()
    assert operation["done"] and operation["metadata"]["counter"] == {"success": "2"}
    assert operation["metadata"]["apiMethodName"].endswith("UpdateStudyMetadata")
    found = requests.get(f"{study}/metadata").json()
    assert [m["00100010"]["Value"][0]["Alphabetic"] for m in found] == ["Renamed^Patient"] * 2
    assert {m["00081030"]["Value"][0] for m in found} == {"Updated"}
    url = (f"{study}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}")
    back = pydicom.dcmread(BytesIO(requests.get(
        url, headers={"Accept": "application/dicom; transfer-syntax=*"}).content))
    assert back.PixelData == ds.PixelData and back.SOPInstanceUID == ds.SOPInstanceUID
    removed = requests.patch(f"{url}/metadata", json=[{"op": "remove", "path": "/00081030"}])
    assert removed.json() == {}
    [one] = requests.get(f"{url}/metadata").json()
    assert "00081030" not in one
    for bad in ([{"op": "replace", "path": "/0020000D", "value": {"vr": "UI"}}],
                [{"op": "move", "path": "/00100010"}], {"op": "remove"},
                [{"op": "remove", "path": "/00081030"}]):  # already removed
        assert requests.patch(f"{url}/metadata", json=bad).status_code == 400, bad
    assert requests.patch(f"{stores.google}/studies/{ds.StudyInstanceUID}/metadata",
                          json=patch).status_code == 404  # v1 has no updateMetadata


def test_google_results_carry_googles_default_attributes(stores: Stores) -> None:
    """Spec 3.6: Google's default sets leave out the computed study attributes and
    RetrieveURL (returned when asked for); a full store has PS3.18's Tables 10.6.3-3 to -5."""
    asked = {"StudyInstanceUID": stores.ct.StudyInstanceUID}
    [google] = requests.get(f"{stores.google}/studies", params=asked).json()
    [full] = requests.get(f"{stores.full}/studies", params=asked).json()
    computed = {"00201206", "00201208", "00080061", "00081190"}
    assert computed <= set(full) and not computed & set(google)
    assert {"00100010", "00080020", "0020000D", "00080056"} <= set(google)
    [asked_for] = requests.get(f"{stores.google}/studies",
                               params={**asked, "includefield": "00201208"}).json()
    assert asked_for["00201208"]["Value"] == [1]
    [series] = requests.get(f"{stores.google}/studies/{stores.ct.StudyInstanceUID}/series"
                            ).json()
    assert "00200011" not in series and "0008103E" in series  # SeriesNumber only if asked


def test_google_renders_with_the_viewport_only(stores: Stores) -> None:
    """Spec 4.3: no parameter but viewport is read on Google (a malformed window is ignored
    there); a full store reads them all (and refuses the malformed one)."""
    google = requests.get(f"{_instance(stores, stores.google)}/rendered",
                          params={"window": "nonsense", "viewport": "64,64"})
    assert google.status_code == 200
    assert Image.open(BytesIO(google.content)).size == (64, 64)
    full = requests.get(f"{_instance(stores, stores.full)}/rendered",
                        params={"window": "nonsense"})
    assert full.status_code == 400
