"""Google's curl samples of seed 002, run literally by bash and curl with only the host (and
the gcloud token) replaced, against a v1beta1 store created through the management API, as
a user following Google's guide would."""

import shutil
import subprocess
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
import requests
from PIL import Image

from tests.conftest import LiveServer
from tests.dataset_factories import corpus_bytes

GOOGLE = "https://healthcare.googleapis.com"
PATH = "projects/PROJECT_ID/locations/REGION/datasets/DATASET_ID/dicomStores/DICOM_STORE_ID"

# The samples, as seed 002 writes them (its PNG sample has no line continuations).
STORE = r"""curl -X POST \
    -H "Content-Type: application/dicom" \
    -H "Authorization: Bearer "$(gcloud auth print-access-token) \
    https://healthcare.googleapis.com/v1beta1/projects/PROJECT_ID/locations/REGION/datasets/DATASET_ID/dicomStores/DICOM_STORE_ID/dicomWeb/studies --data-binary @DCM_FILE.dcm"""  # noqa: E501
SEARCH_INSTANCES = r"""curl -X GET \
     -H "Authorization: Bearer "$(gcloud auth print-access-token) \
     "https://healthcare.googleapis.com/v1beta1/projects/PROJECT_ID/locations/REGION/datasets/DATASET_ID/dicomStores/DICOM_STORE_ID/dicomWeb/instances" """  # noqa: E501
SEARCH_BY_NAME = r"""curl -X GET \
     -H "Authorization: Bearer "$(gcloud auth print-access-token) \
     "https://healthcare.googleapis.com/v1beta1/projects/PROJECT_ID/locations/REGION/datasets/DATASET_ID/dicomStores/DICOM_STORE_ID/dicomWeb/studies?PatientName=Sally%20Zhang" """  # noqa: E501
RETRIEVE_STUDY = r"""curl -X GET \
     -H "Authorization: Bearer "$(gcloud auth print-access-token) \
     -H "Accept: multipart/related; type=application/dicom; transfer-syntax=*" \
     --output FILE_NAME.multipart \
     "https://healthcare.googleapis.com/v1beta1/projects/PROJECT_ID/locations/REGION/datasets/DATASET_ID/dicomStores/DICOM_STORE_ID/dicomWeb/studies/STUDY_UID" """  # noqa: E501
RETRIEVE_INSTANCE = r"""curl -X GET \
     -H "Authorization: Bearer "$(gcloud auth print-access-token) \
     -H "Accept: application/dicom; transfer-syntax=*" \
     --output FILE_NAME.dcm \
     "https://healthcare.googleapis.com/v1beta1/projects/PROJECT_ID/locations/REGION/datasets/DATASET_ID/dicomStores/DICOM_STORE_ID/dicomWeb/studies/STUDY_UID/series/SERIES_UID/instances/INSTANCE_UID" """  # noqa: E501
RENDERED_PNG = r"""curl -X GET 
-H "Authorization: Bearer "$(gcloud auth print-access-token)
-H "Accept: image/png"
--output FILE_NAME.png
"https://healthcare.googleapis.com/v1beta1/projects/PROJECT_ID/locations/REGION/datasets/DATASET_ID/dicomStores/DICOM_STORE_ID/dicomWeb/studies/STUDY_UID/series/SERIES_UID/instances/INSTANCE_UID/rendered" """  # noqa: E501, W291
DELETE_STUDY = r"""curl -X DELETE \
     -H "Authorization: Bearer "$(gcloud auth print-access-token) \
     "https://healthcare.googleapis.com/v1beta1/projects/PROJECT_ID/locations/REGION/datasets/DATASET_ID/dicomStores/DICOM_STORE_ID/dicomWeb/studies/STUDY_UID" """  # noqa: E501


def _run(sample: str, base: str, values: dict[str, str], cwd: Path) -> tuple[int, bytes]:
    """The sample with its placeholders filled in, run by bash; its status and body. The
    PNG sample's lines are one command in the guide, so they are joined."""
    command = sample if "\\\n" in sample else " ".join(sample.split("\n"))
    command = command.replace(GOOGLE, base).replace("$(gcloud auth print-access-token)", "x")
    for name, value in values.items():
        command = command.replace(name, value)
    run = subprocess.run(["bash", "-c", command + ' -sS -w "\\n%{http_code}"'], cwd=cwd,
                         capture_output=True, timeout=60, check=True)
    body, _, status = run.stdout.rpartition(b"\n")
    return int(status), body


@pytest.fixture
def store(live_server: LiveServer, tmp_path: Path) -> dict[str, str]:
    """A v1beta1 dataset and store made as Google's guide makes them, and DCM_FILE.dcm."""
    assert shutil.which("curl") is not None
    base = f"{live_server.base}/v1beta1"
    names = {"PROJECT_ID": "my-project", "REGION": "us-central1", "DATASET_ID": "my-dataset",
             "DICOM_STORE_ID": "my-dicom-store"}
    location = f"projects/{names['PROJECT_ID']}/locations/{names['REGION']}"
    requests.post(f"{base}/{location}/datasets", params={"datasetId": names["DATASET_ID"]},
                  json={}).raise_for_status()
    requests.post(f"{base}/{location}/datasets/{names['DATASET_ID']}/dicomStores",
                  params={"dicomStoreId": names["DICOM_STORE_ID"]}, json={}).raise_for_status()
    ds = pydicom.dcmread(BytesIO(corpus_bytes("CT_small.dcm")))
    ds.PatientName = "Sally Zhang"
    ds.save_as(tmp_path / "DCM_FILE.dcm", enforce_file_format=True)
    return {**names, "STUDY_UID": ds.StudyInstanceUID, "SERIES_UID": ds.SeriesInstanceUID,
            "INSTANCE_UID": ds.SOPInstanceUID}


def test_the_guides_samples_run_as_written(live_server: LiveServer, store: dict[str, str],
                                           tmp_path: Path) -> None:
    status, body = _run(STORE, live_server.base, store, tmp_path)
    assert status == 200 and body.startswith(b"<NativeDicomModel>"), body
    assert store["INSTANCE_UID"].encode() in body
    status, body = _run(SEARCH_INSTANCES, live_server.base, store, tmp_path)
    assert status == 200 and store["INSTANCE_UID"].encode() in body
    status, body = _run(SEARCH_BY_NAME, live_server.base, store, tmp_path)
    assert status == 200 and store["STUDY_UID"].encode() in body
    status, _ = _run(RETRIEVE_STUDY, live_server.base, store, tmp_path)
    assert status == 200
    assert store["INSTANCE_UID"].encode() in (tmp_path / "FILE_NAME.multipart").read_bytes()
    status, _ = _run(RETRIEVE_INSTANCE, live_server.base, store, tmp_path)
    assert status == 200
    assert (tmp_path / "FILE_NAME.dcm").read_bytes() == (tmp_path / "DCM_FILE.dcm").read_bytes()
    status, _ = _run(RENDERED_PNG, live_server.base, store, tmp_path)
    assert status == 200
    assert Image.open(tmp_path / "FILE_NAME.png").size == (128, 128)
    status, body = _run(DELETE_STUDY, live_server.base, store, tmp_path)
    assert status == 200
    status, _ = _run(SEARCH_INSTANCES, live_server.base, store, tmp_path)
    assert status == 204
