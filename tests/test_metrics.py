"""`GET /metrics` scraped as Prometheus does: the counters move as requests are made
(requests by route, method and status; bytes in and out; instances stored, duplicate and
failed; cache lookups), and each store's size is a gauge. With authentication on, only an
administrator may scrape."""

import json
from collections import Counter
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import LiveServer, run_server
from tests.dataset_factories import ct_series

DICOM = "application/dicom"
STORE = "projects/local/locations/local/datasets/default/dicomStores/default"


def scrape(base: str, **headers: str) -> Counter[tuple[str, tuple[tuple[str, str], ...]]]:
    response = requests.get(f"{base}/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Counter({(s.name, tuple(sorted(s.labels.items()))): s.value
                    for family in text_string_to_metric_families(response.text)
                    for s in family.samples})


def test_counters_move_as_requests_are_made(live_server: LiveServer) -> None:
    base, root = live_server.base, live_server.dicomweb
    before = scrape(base)
    files = ct_series(3, size=8, patient="METRICS^ME")
    for data in (*files, files[0], b"not dicom"):
        requests.post(f"{root}/studies", data=data, headers={"Content-Type": DICOM})
    wrong_type = (b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n")
    assert requests.post(f"{root}/studies", data=wrong_type, headers={
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=b'}
        ).status_code == 409  # a part failed before it was staged: counted all the same
    assert requests.get(f"{root}/studies").status_code == 200
    assert requests.get(f"{root}/studies/1.2.3/metadata").status_code == 404
    after = scrape(base)
    moved = after - before

    def count(name: str, **labels: str) -> float:
        return moved[(name, tuple(sorted(labels.items())))]
    assert count("pacs_http_requests_total", route="/studies", method="POST", status="200") == 4
    assert count("pacs_http_requests_total", route="/studies", method="POST", status="409") == 2
    assert count("pacs_http_requests_total", route="/studies/{study}/metadata", method="GET",
                 status="404") == 1
    assert count("pacs_http_request_duration_seconds_count", route="/studies",
                 method="GET") == 1
    assert count("pacs_http_request_bytes_total", route="/studies") >= sum(map(len, files))
    assert count("pacs_http_response_bytes_total", route="/studies") > 0
    assert count("pacs_instances_total", result="stored") == 3
    assert count("pacs_instances_total", result="duplicate") == 1
    assert count("pacs_instances_total", result="failed") == 2
    assert after[("pacs_store_instances", (("store", STORE),))] == 3
    assert after[("pacs_store_blob_bytes", (("store", STORE),))] == sum(map(len, files))


def test_only_an_administrator_scrapes_with_authentication_on(tmp_path: Path) -> None:
    tokens = {"admin-token": "user:admin@example.com", "viewer-token": "user:v@example.com"}
    with run_server(tmp_path / "data", auth_tokens=tuple(tokens.items()),
                    admins=("user:admin@example.com",)) as running:
        base = f"http://127.0.0.1:{running.port}"
        assert requests.get(f"{base}/metrics").status_code == 401
        denied = requests.get(f"{base}/metrics", headers={"Authorization": "Bearer viewer-token"})
        assert denied.status_code == 403, denied.text
        assert json.loads(denied.text)["error"]["status"] == "PERMISSION_DENIED"
        assert scrape(base, Authorization="Bearer admin-token")
