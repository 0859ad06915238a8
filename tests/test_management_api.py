"""The Cloud Healthcare API's management methods, driven by google-api-python-client itself
(its static discovery document, only the endpoint changed): datasets, DICOM stores, operations,
locations and projects, as a program written for Google calls them."""

import json
import time
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import httplib2
import pydicom
import pytest
import requests
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from tests.blob_files import queued_removals
from tests.conftest import LiveServer, run_server
from tests.dataset_factories import corpus_bytes

LOCATION = "projects/p1/locations/us-central1"


@pytest.fixture
def healthcare(live_server: LiveServer) -> Iterator[Any]:
    service = build("healthcare", "v1", http=httplib2.Http(), static_discovery=True,
                    client_options={"api_endpoint": live_server.base + "/"})
    yield service.projects().locations()


def _error(call: Any) -> dict[str, Any]:
    with pytest.raises(HttpError) as caught:
        call.execute()
    body: dict[str, Any] = json.loads(caught.value.content)["error"]
    assert body["code"] == caught.value.resp.status
    return body


def test_datasets_are_created_by_an_operation_and_paged(healthcare: Any) -> None:
    datasets = healthcare.datasets()
    operation = datasets.create(parent=LOCATION, datasetId="ds1",
                                body={"timeZone": "Europe/Paris"}).execute()
    assert operation["done"] is True
    assert operation["name"].startswith(f"{LOCATION}/datasets/ds1/operations/")
    assert operation["response"]["name"] == f"{LOCATION}/datasets/ds1"
    assert operation["metadata"]["apiMethodName"].endswith("DatasetService.CreateDataset")
    again = datasets.operations().get(name=operation["name"]).execute()
    assert again == operation
    assert datasets.operations().cancel(name=operation["name"], body={}).execute() == {}
    listed = datasets.operations().list(name=f"{LOCATION}/datasets/ds1").execute()
    assert [op["name"] for op in listed["operations"]] == [operation["name"]]
    gone = _error(datasets.operations().cancel(name=f"{LOCATION}/datasets/ds1/operations/99",
                                               body={}))
    assert gone["code"] == 404
    for name in ("ds2", "ds3"):
        datasets.create(parent=LOCATION, datasetId=name, body={}).execute()
    first = datasets.list(parent=LOCATION, pageSize=2).execute()
    assert [d["name"].rsplit("/", 1)[1] for d in first["datasets"]] == ["ds1", "ds2"]
    rest = datasets.list(parent=LOCATION, pageSize=2,
                         pageToken=first["nextPageToken"]).execute()
    assert [d["name"].rsplit("/", 1)[1] for d in rest["datasets"]] == ["ds3"]
    assert "nextPageToken" not in rest
    assert datasets.get(name=f"{LOCATION}/datasets/ds1").execute() == {
        "name": f"{LOCATION}/datasets/ds1", "timeZone": "Europe/Paris"}
    patched = datasets.patch(name=f"{LOCATION}/datasets/ds2", updateMask="timeZone",
                             body={"timeZone": "UTC"}).execute()
    assert patched["timeZone"] == "UTC"
    conflict = _error(datasets.create(parent=LOCATION, datasetId="ds1", body={}))
    assert (conflict["code"], conflict["status"]) == (409, "ALREADY_EXISTS")
    bad = _error(datasets.create(parent=LOCATION, datasetId="no/slash!", body={}))
    assert (bad["code"], bad["status"]) == (400, "INVALID_ARGUMENT")
    missing = _error(datasets.get(name=f"{LOCATION}/datasets/nope"))
    assert (missing["code"], missing["status"]) == (404, "NOT_FOUND")


def test_stores_with_labels_filter_patch_and_delete(healthcare: Any,
                                                    live_server: LiveServer) -> None:
    healthcare.datasets().create(parent=LOCATION, datasetId="imaging", body={}).execute()
    dataset = f"{LOCATION}/datasets/imaging"
    stores = healthcare.datasets().dicomStores()
    made = stores.create(parent=dataset, dicomStoreId="ct", body={
        "labels": {"team": "ai", "site": "north"},
        "notificationConfig": {"pubsubTopic": "projects/p1/topics/t"}}).execute()
    assert made == {"name": f"{dataset}/dicomStores/ct",
                    "labels": {"team": "ai", "site": "north", "pacs-profile": "google"},
                    "notificationConfig": {"pubsubTopic": "projects/p1/topics/t"}}
    stores.create(parent=dataset, dicomStoreId="mr", body={"labels": {"team": "qa"}}).execute()
    assert _error(stores.create(parent=dataset, dicomStoreId="ct", body={}))["code"] == 409
    found = stores.list(parent=dataset, filter="labels.team=ai").execute()
    assert [s["name"] for s in found["dicomStores"]] == [f"{dataset}/dicomStores/ct"]
    assert len(stores.list(parent=dataset, filter="labels.site:*").execute()["dicomStores"]) == 1
    assert len(stores.list(parent=dataset).execute()["dicomStores"]) == 2
    page = stores.list(parent=dataset, pageSize=1).execute()
    rest = stores.list(parent=dataset, pageSize=1, pageToken=page["nextPageToken"]).execute()
    assert [s["name"].rsplit("/", 1)[1] for s in page["dicomStores"] + rest["dicomStores"]] \
        == ["ct", "mr"]
    filtered = stores.list(parent=dataset, pageSize=1, filter="labels.team=qa").execute()
    assert [s["name"].rsplit("/", 1)[1] for s in filtered["dicomStores"]] == ["mr"]
    patched = stores.patch(name=f"{dataset}/dicomStores/mr", updateMask="labels",
                           body={"labels": {"team": "ai"}}).execute()
    assert patched["labels"] == {"team": "ai", "pacs-profile": "google"}
    assert len(stores.list(parent=dataset, filter="labels.team=ai").execute()
               ["dicomStores"]) == 2
    assert _error(stores.list(parent=dataset, filter="team = ai"))["code"] == 400
    for labels in ({"Team": "ai"}, {"team": "AI"}, {"1team": "ai"}, {"t": "x" * 64}):
        assert _error(stores.create(parent=dataset, dicomStoreId="bad",
                                    body={"labels": labels}))["code"] == 400

    # the new store serves DICOMweb at once; deleting it takes its instances and blobs
    web = f"{live_server.base}/v1/{dataset}/dicomStores/ct/dicomWeb"
    stored = requests.post(f"{web}/studies", data=corpus_bytes("CT_small.dcm"),
                           headers={"Content-Type": "application/dicom"})
    assert stored.status_code == 200
    blobs = [p for p in (live_server.data_dir / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 1
    assert requests.get(f"{web}/studies").status_code == 200
    assert stores.delete(name=f"{dataset}/dicomStores/ct").execute() == {}
    assert requests.get(f"{web}/studies").status_code == 404
    assert queued_removals(live_server.data_dir) == {blobs[0].name}  # gone after the grace
    assert _error(stores.get(name=f"{dataset}/dicomStores/ct"))["code"] == 404
    stores.create(parent=dataset, dicomStoreId="ct", body={}).execute()  # the name is free
    assert requests.get(f"{web}/studies").status_code == 204


def test_deleting_a_dataset_deletes_its_stores(healthcare: Any) -> None:
    healthcare.datasets().create(parent=LOCATION, datasetId="tmp", body={}).execute()
    dataset = f"{LOCATION}/datasets/tmp"
    healthcare.datasets().dicomStores().create(parent=dataset, dicomStoreId="s",
                                               body={}).execute()
    assert healthcare.datasets().delete(name=dataset).execute() == {}
    assert _error(healthcare.datasets().dicomStores().get(
        name=f"{dataset}/dicomStores/s"))["code"] == 404
    assert _error(healthcare.datasets().get(name=dataset))["code"] == 404


def test_locations_and_projects(healthcare: Any, live_server: LiveServer) -> None:
    """What OHIF's Google data source lists: projects (Cloud Resource Manager's shape), then
    locations, datasets and stores."""
    healthcare.datasets().create(parent=LOCATION, datasetId="d", body={}).execute()
    projects = requests.get(f"{live_server.base}/v1/projects").json()["projects"]
    assert {p["projectId"] for p in projects} == {"local", "p1"}
    assert requests.get(f"{live_server.base}/v1/projects/p1").json()["name"] == "p1"
    unknown = requests.get(f"{live_server.base}/v1/projects/p2")
    assert unknown.status_code == 404 and unknown.json()["error"]["status"] == "NOT_FOUND"
    service = build("healthcare", "v1", http=httplib2.Http(), static_discovery=True,
                    client_options={"api_endpoint": live_server.base + "/"})
    locations = service.projects().locations().list(name="projects/p1").execute()
    assert [loc["locationId"] for loc in locations["locations"]] == ["us-central1"]
    default = healthcare.datasets().dicomStores().list(
        parent="projects/local/locations/local/datasets/default").execute()
    assert [s["name"].rsplit("/", 1)[1] for s in default["dicomStores"]] == ["default"]


def test_store_study_and_series_metrics_and_storage_info(healthcare: Any,
                                                         live_server: LiveServer) -> None:
    """Counts as strings, as Google sends int64 values (spec 2.4)."""
    healthcare.datasets().create(parent=LOCATION, datasetId="m", body={}).execute()
    name = f"{LOCATION}/datasets/m/dicomStores/s"
    stores = healthcare.datasets().dicomStores()
    stores.create(parent=f"{LOCATION}/datasets/m", dicomStoreId="s", body={}).execute()
    files = [corpus_bytes("CT_small.dcm"), corpus_bytes("MR_small.dcm")]
    for data in files:  # the CT NEARLINE, as the Storage-Class header asks (spec 5.1)
        assert requests.post(f"{live_server.base}/v1/{name}/dicomWeb/studies", data=data,
                             headers={"Content-Type": "application/dicom",
                                      "Storage-Class": "NEARLINE" if data is files[0]
                                      else "STANDARD"}).ok
    wrong = requests.post(f"{live_server.base}/v1/{name}/dicomWeb/studies", data=files[0],
                          headers={"Content-Type": "application/dicom",
                                   "Storage-Class": "GLACIER"})
    assert wrong.status_code == 400 and "NEARLINE" in wrong.json()["error"]["message"]
    store = stores.getDICOMStoreMetrics(name=name).execute()
    assert {k: store[k] for k in ("name", "studyCount", "seriesCount", "instanceCount")} == {
        "name": name, "studyCount": "2", "seriesCount": "2", "instanceCount": "2"}
    assert store["blobStorageSizeBytes"] == str(sum(map(len, files)))
    ct = pydicom.dcmread(BytesIO(files[0]))
    study = f"{name}/dicomWeb/studies/{ct.StudyInstanceUID}"
    metrics = stores.dicomWeb().studies().getStudyMetrics(study=study).execute()
    assert (metrics["study"], metrics["seriesCount"], metrics["instanceCount"]) == (
        study, "1", "1")
    series = f"{study}/series/{ct.SeriesInstanceUID}"
    assert stores.dicomWeb().studies().series().getSeriesMetrics(series=series).execute()[
        "instanceCount"] == "1"
    info = stores.dicomWeb().studies().series().instances().getStorageInfo(
        resource=f"{series}/instances/{ct.SOPInstanceUID}").execute()
    assert info["blobStorageInfo"] == {"sizeBytes": str(len(files[0])),
                                       "storageClass": "NEARLINE"}
    assert int(info["structuredStorageInfo"]["sizeBytes"]) > 1000
    missing = _error(stores.dicomWeb().studies().getStudyMetrics(
        study=f"{name}/dicomWeb/studies/1.2.3"))
    assert missing["code"] == 404


def test_import_and_export_through_gs_uris(healthcare: Any, live_server: LiveServer) -> None:
    """gs://BUCKET/PATH is <data>/gcs/BUCKET/PATH by default: import takes Google's
    wildcards, skips what is stored already and counts failures; export writes
    STUDY/SERIES/INSTANCE.dcm under the prefix."""
    healthcare.datasets().create(parent=LOCATION, datasetId="x", body={}).execute()
    name = f"{LOCATION}/datasets/x/dicomStores/s"
    stores = healthcare.datasets().dicomStores()
    stores.create(parent=f"{LOCATION}/datasets/x", dicomStoreId="s", body={}).execute()
    bucket = live_server.data_dir / "gcs" / "bucket"
    files = {"in/a.dcm": corpus_bytes("CT_small.dcm"), "in/b.dcm": corpus_bytes("MR_small.dcm"),
             "in/sub/c.dcm": corpus_bytes("rtdose.dcm"), "in/notes.txt": b"not dicom" * 20}
    for path, data in files.items():
        (bucket / path).parent.mkdir(parents=True, exist_ok=True)
        (bucket / path).write_bytes(data)
    started = stores.import_(name=name, body={"gcsSource": {"uri": "gs://bucket/in/**.dcm"},
                                              "blobStorageSettings": {"blobStorageClass":
                                                                      "COLDLINE"}}).execute()
    assert list(started) == ["name"]  # as Google answers: the operation to poll
    assert started["name"].startswith(f"{LOCATION}/datasets/x/operations/")
    done = finished(healthcare, started)
    assert done["metadata"]["counter"] == {"success": "3"} and "error" not in done
    assert done["metadata"]["apiMethodName"].endswith("DicomService.ImportDicomData")
    assert done["response"]["@type"].endswith("ImportDicomDataResponse")
    again = finished(healthcare, stores.import_(name=name, body={
        "gcsSource": {"uri": "gs://bucket/in/**"}}).execute())
    assert again["metadata"]["counter"] == {"success": "3", "failure": "1"}
    assert again["error"]["code"] == 3 and "response" not in again
    assert again["error"]["details"][0]["metadata"]["uri"] == "gs://bucket/in/notes.txt"
    assert stores.getDICOMStoreMetrics(name=name).execute()["instanceCount"] == "3"
    one = finished(healthcare, stores.import_(name=name, body={
        "gcsSource": {"uri": "gs://bucket/in/?.dcm"}}).execute())
    assert one["metadata"]["counter"] == {"success": "2"}
    nothing = finished(healthcare, stores.import_(name=name, body={
        "gcsSource": {"uri": "gs://bucket/none"}}).execute())
    assert nothing["error"]["code"] == 3 and "no file matches" in nothing["error"]["message"]
    assert _error(stores.import_(name=name, body={"gcsSource": {"uri": "/etc/passwd"}})
                  )["code"] == 400
    assert _error(stores.import_(name=name, body={
        "gcsSource": {"uri": "gs://bucket/in/**"},
        "blobStorageSettings": {"blobStorageClass": "FROZEN"}}))["code"] == 400
    for escape in ("gs://bucket//etc/passwd", "gs://bucket/a//tmp", "gs://bucket/../x"):
        # an empty segment made the rest absolute: an import walked /, an export wrote there
        assert _error(stores.import_(name=name, body={"gcsSource": {"uri": escape}})
                      )["code"] == 400
        assert _error(stores.export(name=name, body={"gcsDestination": {"uriPrefix": escape}})
                      )["code"] == 400
    refused = _error(stores.export(name=name, body={"gcsDestination": {
        "uriPrefix": "gs://bucket/png", "mimeType": "image/png"}}))
    assert refused["code"] == 400 and "image/png" in refused["message"]
    exported = finished(healthcare, stores.export(name=name, body={"gcsDestination": {
        "uriPrefix": "gs://bucket/out", "mimeType": "application/dicom; transfer-syntax=*"}}
    ).execute())
    assert exported["metadata"]["counter"] == {"success": "3"}
    assert exported["response"]["@type"].endswith("ExportDicomDataResponse")
    written = {p.read_bytes() for p in (bucket / "out").rglob("*.dcm")}
    assert written == {files["in/a.dcm"], files["in/b.dcm"], files["in/sub/c.dcm"]}
    ct = pydicom.dcmread(BytesIO(files["in/a.dcm"]))
    assert (bucket / "out" / ct.StudyInstanceUID / ct.SeriesInstanceUID /
            f"{ct.SOPInstanceUID}.dcm").read_bytes() == files["in/a.dcm"]
    info = stores.dicomWeb().studies().series().instances().getStorageInfo(
        resource=f"{name}/dicomWeb/studies/{ct.StudyInstanceUID}/series/"
                 f"{ct.SeriesInstanceUID}/instances/{ct.SOPInstanceUID}").execute()
    assert info["blobStorageInfo"]["storageClass"] == "COLDLINE"


def finished(healthcare: Any, operation: dict[str, Any]) -> dict[str, Any]:
    """The operation polled until done, as Google's samples poll (a few seconds at most)."""
    for _ in range(300):
        polled: dict[str, Any] = healthcare.datasets().operations().get(
            name=operation["name"]).execute()
        if polled.get("done"):
            return polled
        time.sleep(0.05)
    raise AssertionError(f"operation {operation['name']} not done: {polled}")


def test_dicomweb_through_the_discovery_client(healthcare: Any,
                                              live_server: LiveServer) -> None:
    """Store, search (an empty result too), retrieve metadata and an instance, and delete a
    study through the discovery client's dicomWeb methods, setting the raw bodies and
    headers a DICOMweb request needs on its requests."""
    healthcare.datasets().create(parent=LOCATION, datasetId="web", body={}).execute()
    parent = f"{LOCATION}/datasets/web/dicomStores/s"
    stores = healthcare.datasets().dicomStores()
    stores.create(parent=f"{LOCATION}/datasets/web", dicomStoreId="s", body={}).execute()
    assert stores.searchForInstances(parent=parent, dicomWebPath="instances").execute() == {}
    data = corpus_bytes("CT_small.dcm")
    request = stores.storeInstances(parent=parent, dicomWebPath="studies", body=None)
    request.headers.update({"content-type": "application/dicom",
                            "content-length": str(len(data))})
    request.body = data
    request.execute()  # the XML response is not JSON; the sample only checks it succeeded
    ct = pydicom.dcmread(BytesIO(data))
    found = stores.searchForInstances(parent=parent, dicomWebPath="instances").execute()
    assert [i["00080018"]["Value"] for i in found] == [[ct.SOPInstanceUID]]
    path = (f"studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances/"
            f"{ct.SOPInstanceUID}")
    [metadata] = stores.studies().series().instances().retrieveMetadata(
        parent=parent, dicomWebPath=f"{path}/metadata").execute()
    assert metadata["00100010"]["Value"] == [{"Alphabetic": str(ct.PatientName)}]
    retrieve = stores.studies().series().instances().retrieveInstance(
        parent=parent, dicomWebPath=path)
    retrieve.headers["Accept"] = "application/dicom; transfer-syntax=*"
    retrieve.postproc = lambda _response, content: content  # the raw Part 10 bytes
    assert retrieve.execute() == data
    deleted = stores.studies().delete(parent=parent,
                                      dicomWebPath=f"studies/{ct.StudyInstanceUID}").execute()
    operation = healthcare.datasets().operations().get(name=deleted["name"]).execute()
    assert operation["done"] is True
    assert stores.searchForInstances(parent=parent, dicomWebPath="instances").execute() == {}


def test_datasets_stores_and_operations_survive_a_restart(tmp_path: Any) -> None:
    data = tmp_path / "data"
    names: dict[str, str] = {}
    for turn in range(2):
        with run_server(data) as running:
            base = f"http://127.0.0.1:{running.port}"
            service = build("healthcare", "v1", http=httplib2.Http(), static_discovery=True,
                            client_options={"api_endpoint": base + "/"})
            datasets = service.projects().locations().datasets()
            if turn == 0:
                names["op"] = datasets.create(parent=LOCATION, datasetId="kept",
                                              body={}).execute()["name"]
                datasets.dicomStores().create(parent=f"{LOCATION}/datasets/kept",
                                              dicomStoreId="s", body={"labels": {"a": "b"}}
                                              ).execute()
                continue
            assert datasets.operations().get(name=names["op"]).execute()["done"] is True
            store = datasets.dicomStores().get(
                name=f"{LOCATION}/datasets/kept/dicomStores/s").execute()
            assert store["labels"] == {"a": "b", "pacs-profile": "google"}


def test_a_management_body_over_googles_10_mb_is_refused(live_server: LiveServer) -> None:
    url = f"{live_server.base}/v1/{LOCATION}/datasets"
    big = requests.post(url, params={"datasetId": "big"},
                        data=b'{"timeZone": "' + b"x" * (10 * 1024 * 1024) + b'"}',
                        headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and big.json()["error"]["status"] == "INVALID_ARGUMENT"
    bad = requests.post(url, params={"datasetId": "bad"}, data=b"{not json",
                        headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]["message"]
