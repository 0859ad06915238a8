"""deploy/compose.yaml, checked without a Docker engine (none here): its pieces agree with one
another and with the Dockerfile (credentials, host names, ports, mounted files, nginx's
upstreams), and three replicas started with its exact environment, only the host names it
gives pointed at a local PostgreSQL and SeaweedFS, serve authenticated requests and a
long-running operation through deploy/nginx.conf."""

import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from benchmarks.replicas import nginx
from tests.served_process import Replica, free_port, running
from tests.storage import postgres_server, s3_server
from tests.stow_ledger import DICOM, new_instances

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DEPLOY = Path(__file__).parent.parent / "deploy"
COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
PACS: dict[str, Any] = COMPOSE["x-pacs"]
ENV: dict[str, str] = PACS["environment"]
REPLICAS = sorted(name for name in SERVICES if re.fullmatch(r"pacs\d+", name))
STORE = "/v1/projects/local/locations/local/datasets/default/dicomStores/default"


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """A service's bind mounts of files of deploy/: path in the container -> the file."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            found[target] = DEPLOY / source
    return found


def test_the_pieces_of_the_deployment_agree() -> None:
    assert len(REPLICAS) == 3 and all(SERVICES[name] == PACS for name in REPLICAS)
    assert (DEPLOY.parent / PACS["build"].removeprefix("..").lstrip("/") / "Dockerfile"
            ).is_file()
    port = re.search(r"PACS_PORT=(\d+)", (DEPLOY.parent / "Dockerfile").read_text())
    assert port is not None
    upstreams = re.findall(r"(?m)^\s*server (\S+):(\d+)", (DEPLOY / "nginx.conf").read_text())
    assert upstreams == [(name, port[1]) for name in REPLICAS]
    assert f"{port[1]}:" in SERVICES["nginx"]["ports"][0] or "8080:8080" in \
        SERVICES["nginx"]["ports"]

    index = urlsplit(ENV["PACS_INDEX"])
    database = SERVICES["postgres"]["environment"]
    assert (index.scheme, index.hostname, index.port or 5432) == ("postgresql", "postgres",
                                                                   5432)
    assert (index.username, index.password, index.path.lstrip("/")) == (
        database["POSTGRES_USER"], database["POSTGRES_PASSWORD"], database["POSTGRES_DB"])
    assert database["POSTGRES_USER"] in " ".join(SERVICES["postgres"]["healthcheck"]["test"])

    endpoint = urlsplit(ENV["AWS_ENDPOINT_URL"])
    assert (endpoint.scheme, endpoint.hostname, endpoint.port) == ("http", "seaweedfs", 8333)
    assert ENV["AWS_ALLOW_HTTP"] == "true" and ENV["PACS_BLOBS"].startswith("s3://")
    weed = SERVICES["seaweedfs"]
    config = re.search(r"-s3\.config=(\S+)", weed["command"])
    assert config is not None and config[1] in mounts(weed)
    [identity] = json.loads(mounts(weed)[config[1]].read_text())["identities"]
    assert {"accessKey": ENV["AWS_ACCESS_KEY_ID"], "secretKey": ENV["AWS_SECRET_ACCESS_KEY"]
            } in identity["credentials"] and "Write" in identity["actions"]

    files = mounts(PACS)
    assert all(path.is_file() for path in files.values())
    tokens = json.loads(files[ENV["PACS_AUTH_TOKENS"]].read_text())
    assert ENV["PACS_ADMIN"] in tokens.values()
    assert {"postgres", "seaweedfs"} <= set(PACS["depends_on"])
    assert set(SERVICES["nginx"]["depends_on"]) == set(REPLICAS)


def test_replicas_with_its_environment_serve_through_nginx(tmp_path: Path) -> None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        reason = "nginx is missing: apt-get install nginx-light (.ci/run does)"
        if os.environ.get("PACS_REQUIRE_NGINX"):
            pytest.fail(reason)
        pytest.skip(reason)
    bucket = s3_server.shared()
    files = mounts(PACS)
    env = {**os.environ, **ENV, **bucket.env,  # the hosts compose names, here
           "PACS_INDEX": postgres_server.index_dsn(tmp_path),
           "PACS_BLOBS": f"s3://{s3_server.BUCKET}/{uuid.uuid4().hex[:12]}",
           "PACS_AUTH_TOKENS": str(files[ENV["PACS_AUTH_TOKENS"]]),
           "PACS_HOST": "127.0.0.1", "PACS_DATA": str(tmp_path / "data"),
           "PACS_GCS_ROOT": str(tmp_path / "gcs")}
    replicas = [Replica(n, free_port(), [], env, log=tmp_path / f"pacs{n}.log")
                for n in range(len(REPLICAS))]
    token = {"Authorization": "Bearer " + next(iter(json.loads(
        files[ENV["PACS_AUTH_TOKENS"]].read_text())))}
    with running(replicas), nginx([r.port for r in replicas], tmp_path) as port:
        base = f"http://127.0.0.1:{port}"
        [sent] = new_instances(1)
        stow = {"Content-Type": DICOM, "Accept": "application/dicom+json"}
        assert requests.post(f"{base}/dicomweb/studies", data=sent.data, headers=stow,
                             timeout=30).status_code == 401
        stored = requests.post(f"{base}/dicomweb/studies", data=sent.data, timeout=30,
                               headers={**stow, **token})
        assert stored.status_code == 200, stored.text
        url = stored.json()["00081190"]["Value"][0]
        assert url.startswith(f"{base}/dicomweb/studies/")  # as nginx forwarded the host
        found = requests.get(f"{base}/dicomweb/instances", headers=token, timeout=30)
        assert [i["00080018"]["Value"] for i in found.json()] == [[sent.sop]]
        exported = requests.post(f"{base}{STORE}:export", headers=token, timeout=30,
                                 json={"gcsDestination": {"uriPrefix": "gs://out/x"}})
        assert exported.status_code == 200, exported.text
        deadline = time.monotonic() + 30
        while not (done := requests.get(f"{base}/v1/{exported.json()['name']}",
                                        headers=token, timeout=30).json()).get("done"):
            assert time.monotonic() < deadline, done
            time.sleep(0.1)
        assert done["metadata"]["counter"] == {"success": "1"}, done
        assert (tmp_path / "gcs" / "out" / "x" / sent.study / sent.series /
                f"{sent.sop}.dcm").read_bytes() == sent.data
