"""Each of Google's predefined roles, granted on a dataset, against each kind of call: what
it may do is what the Cloud Healthcare API documents (spec 6.3), written out here call by
call rather than derived from the server's own role table."""

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from pacs.settings import Settings
from tests.conftest import LiveServer, ServerThread

DATASET = "projects/rm/locations/l/datasets/d"
STORE = DATASET + "/dicomStores/s"
ROLES = ("dicomViewer", "dicomEditor", "dicomStoreViewer", "dicomStoreAdmin", "datasetViewer",
         "datasetAdmin", "none")
DICOM = {"Content-Type": "application/dicom"}
# name: (method, path, query, JSON body or raw bytes, headers). Bodies are harmless: a call the
# role may make answers something other than 401/403 (often 400 or 404) and changes nothing.
CALLS: dict[str, tuple[str, str, dict[str, str], Any, dict[str, str]]] = {
    "search": ("GET", f"v1/{STORE}/dicomWeb/studies", {}, None, {}),
    "retrieve": ("GET", f"v1/{STORE}/dicomWeb/studies/1.2.3/metadata", {}, None, {}),
    "store": ("POST", f"v1/{STORE}/dicomWeb/studies", {}, b"not dicom", DICOM),
    "delete": ("DELETE", f"v1/{STORE}/dicomWeb/studies/1.2.3", {}, None, {}),
    "update": ("PUT", f"v1beta1/{STORE}/dicomWeb/studies", {}, b"not dicom", DICOM),
    "getStore": ("GET", f"v1/{STORE}", {}, None, {}),
    "listStores": ("GET", f"v1/{DATASET}/dicomStores", {}, None, {}),
    "createStore": ("POST", f"v1/{DATASET}/dicomStores", {"dicomStoreId": "bad id!"}, {}, {}),
    "patchStore": ("PATCH", f"v1/{STORE}", {"updateMask": "nothing"}, {}, {}),
    "deleteStore": ("DELETE", f"v1/{DATASET}/dicomStores/absent", {}, None, {}),
    "getStorePolicy": ("GET", f"v1/{STORE}:getIamPolicy", {}, None, {}),
    "setStorePolicy": ("POST", f"v1/{STORE}:setIamPolicy", {}, {"policy": "bad"}, {}),
    "export": ("POST", f"v1/{STORE}:export", {}, {}, {}),
    "import": ("POST", f"v1/{STORE}:import", {}, {}, {}),
    "getDataset": ("GET", f"v1/{DATASET}", {}, None, {}),
    "patchDataset": ("PATCH", f"v1/{DATASET}", {"updateMask": "nothing"}, {}, {}),
    "getDatasetPolicy": ("GET", f"v1/{DATASET}:getIamPolicy", {}, None, {}),
    "listOperations": ("GET", f"v1/{DATASET}/operations", {}, None, {}),
    "getOperation": ("GET", f"v1/{DATASET}/operations/absent", {}, None, {}),
}
_SEE_STORES = {"getStore", "listStores", "getDataset", "getOperation"}
ALLOWED = {  # spec 6.3, Google's predefined roles
    "dicomViewer": _SEE_STORES | {"search", "retrieve", "export"},
    "dicomEditor": _SEE_STORES | {"search", "retrieve", "store", "delete", "update", "export",
                                  "import"},
    "dicomStoreViewer": _SEE_STORES,
    "dicomStoreAdmin": _SEE_STORES | {"createStore", "patchStore", "deleteStore", "delete",
                                      "getStorePolicy", "setStorePolicy"},
    "datasetViewer": {"getDataset", "getOperation"},
    "datasetAdmin": {"getDataset", "getOperation", "patchDataset", "getDatasetPolicy",
                     "listOperations"},
    "none": set(),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("roles") / "data"
    tokens = {f"{role}-token": f"user:{role}@example.com" for role in ROLES}
    settings = Settings(data_dir=data, auth_tokens=(("admin", "user:admin@example.com"),
                                                    *tokens.items()),
                        admins=("user:admin@example.com",))
    with ServerThread(settings) as running:
        base = f"http://127.0.0.1:{running.port}"
        admin = {"Authorization": "Bearer admin"}
        location = DATASET.rsplit("/datasets/", 1)[0]
        for url, params in ((f"{base}/v1/{location}/datasets", {"datasetId": "d"}),
                            (f"{base}/v1/{DATASET}/dicomStores", {"dicomStoreId": "s"})):
            assert requests.post(url, params=params, json={}, headers=admin).ok
        policy = {"bindings": [{"role": f"roles/healthcare.{role}",
                                "members": [f"user:{role}@example.com"]}
                               for role in ROLES if role != "none"]}
        assert requests.post(f"{base}/v1/{DATASET}:setIamPolicy", headers=admin,
                             json={"policy": policy}).ok
        yield LiveServer(base, data)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_may_do_what_google_documents(server: LiveServer, role: str) -> None:
    allowed, statuses = set(), {}
    for name, (method, path, query, body, headers) in CALLS.items():
        answer = requests.request(
            method, f"{server.base}/{path}", params=query,
            headers={"Authorization": f"Bearer {role}-token", **headers},
            **({"data": body} if isinstance(body, bytes) else {"json": body}))
        statuses[name] = answer.status_code
        assert answer.status_code != 401 and answer.status_code < 500, answer.text
        if answer.status_code != 403:
            allowed.add(name)
        else:
            assert answer.json()["error"]["status"] == "PERMISSION_DENIED"
    assert allowed == ALLOWED[role], statuses
