"""Health probes: /livez while the process answers, /healthz and /readyz only while the
index and the blob store can be reached (503 naming what cannot, then 200 again)."""

import requests

from tests.conftest import LiveServer


def test_readiness_follows_the_blob_store_and_liveness_does_not(
        live_server: LiveServer) -> None:
    base = live_server.base
    for probe in ("/healthz", "/readyz", "/livez"):
        assert requests.get(base + probe).status_code == 200
    blobs = live_server.data_dir / "blobs"
    blobs.rename(blobs.with_name("blobs-away"))  # a volume that went away
    try:
        for probe in ("/healthz", "/readyz"):
            down = requests.get(base + probe)
            assert down.status_code == 503
            error = down.json()["error"]
            assert error["status"] == "UNAVAILABLE" and "blob store" in error["message"]
        assert requests.get(base + "/livez").status_code == 200
    finally:
        blobs.with_name("blobs-away").rename(blobs)
    assert requests.get(base + "/healthz").status_code == 200


def test_readiness_follows_the_index(live_server: LiveServer) -> None:
    index = live_server.data_dir / "index.sqlite3"
    index.rename(index.with_name("index-away"))
    try:
        down = requests.get(live_server.base + "/readyz")
        assert down.status_code == 503 and "index" in down.json()["error"]["message"]
    finally:
        index.with_name("index-away").rename(index)
    assert requests.get(live_server.base + "/readyz").status_code == 200
