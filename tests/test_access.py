"""Every route declares its permission, and one place checks it: walking the whole route
table with no token (401), a token without the permission (403) and an administrator's
token (neither), HEAD and OPTIONS included, on /dicomweb and on Google's paths."""

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from starlette.routing import Mount, Route

from pacs.routes import ROUTES
from pacs.settings import Settings
from tests.conftest import LiveServer, ServerThread
from tests.dataset_factories import corpus_bytes
from tests.served_process import served

TOKENS = {"admin-token": "user:admin@example.com", "alice-token": "user:alice@example.com"}
VALUES = {"version": "v1", "project": "p", "location": "l", "dataset": "d", "store": "s",
          "study": "1.2.3", "series": "1.2.3.4", "instance": "1.2.3.4.5", "frames": "1",
          "path": "7FE00010", "operation": "1", "item": "ORDER-1"}


def _fill(template: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: VALUES[m[1]], template)


def _calls() -> list[tuple[str, str]]:
    """(method, path) of every route, mounted ones under each of their mounts."""
    calls = []
    for top in ROUTES:
        routes = [(top.path, r) for r in top.routes] if isinstance(top, Mount) else [("", top)]
        for prefix, route in routes:
            assert isinstance(route, Route)
            for method in sorted(route.methods or ()):
                calls.append((method, _fill(prefix + route.path)))
    return calls


CALLS = _calls()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("access") / "data"
    settings = Settings(data_dir=data, auth_tokens=tuple(TOKENS.items()),
                        admins=("user:admin@example.com",))
    with ServerThread(settings) as running:
        yield LiveServer(f"http://127.0.0.1:{running.port}", data)


def test_the_table_is_walked_whole() -> None:
    assert len(CALLS) > 100
    assert ("GET", "/dicomweb/studies") in CALLS and ("HEAD", "/dicomweb/studies") in CALLS
    assert ("POST", "/v1/projects/p/locations/l/datasets") in CALLS


# probes a load balancer or supervisor sends, and the viewer's code (none is served here)
PUBLIC = {"/healthz": 200, "/readyz": 200, "/livez": 200, "/viewer": 404, "/viewer/7FE00010": 404}


@pytest.mark.parametrize(("method", "path"), CALLS, ids=[f"{m} {p}" for m, p in CALLS])
def test_every_route_asks_for_its_permission(server: LiveServer, method: str,
                                             path: str) -> None:
    url = server.base + path
    if path in PUBLIC:
        assert requests.request(method, url).status_code == PUBLIC[path]
        return
    anonymous = requests.request(method, url)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    if method != "HEAD":
        assert anonymous.json()["error"]["status"] == "UNAUTHENTICATED"
    wrong = requests.request(method, url, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    alice = requests.request(method, url, headers={"Authorization": "Bearer alice-token"})
    if path.endswith(":testIamPermissions"):  # needs only a credential: it tells what is held
        assert alice.status_code not in (401, 403), alice.text
        return
    assert alice.status_code == 403, alice.text
    if method != "HEAD":
        message = alice.json()["error"]["message"]
        assert message.startswith("Permission '") and "(or it may not exist)." in message
    admin = requests.request(method, url, headers={"Authorization": "Bearer admin-token"})
    assert admin.status_code not in (401, 403), admin.text


@pytest.mark.parametrize("path", ["/dicomweb//studies", "/dicomweb/studies/",
                                  "/v1beta1/projects/local/locations/local/datasets/default/"
                                  "dicomStores/default/dicomWeb/studies",
                                  "/dicomweb/%73tudies"])
def test_path_variants_are_guarded_too(server: LiveServer, path: str) -> None:
    assert requests.get(server.base + path).status_code in (401, 404)
    assert requests.get(server.base + path,
                        headers={"Authorization": "Bearer alice-token"}).status_code in (403,
                                                                                        404)


def test_the_access_token_parameter_is_a_credential(server: LiveServer) -> None:
    """Google accepts the token as `access_token` (dcm4che's stowrs sends it so)."""
    url = f"{server.base}/dicomweb/studies"
    assert requests.get(url, params={"access_token": "admin-token"}).status_code == 204
    assert requests.get(url, params={"access_token": "alice-token"}).status_code == 403


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pacs", "serve", "--port", "1", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_public_address_needs_authentication(tmp_path: Path) -> None:
    refused = _serve("--host", "0.0.0.0", "--data", str(tmp_path / "d"))
    assert refused.returncode != 0
    assert "refusing to serve 0.0.0.0 without authentication" in refused.stderr
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"t": "alice@example.com"}))  # not member syntax
    bad = _serve("--host", "0.0.0.0", "--auth-tokens", str(tokens))
    assert bad.returncode != 0
    assert "must be a JSON object of tokens to identities" in bad.stderr
    half = _serve("--host", "0.0.0.0", "--oidc-issuer", "https://kc.example/realms/r")
    assert half.returncode != 0
    assert "--oidc-issuer needs oidc_audience and oidc_jwks too" in half.stderr
    roles = tmp_path / "roles.json"
    roles.write_text(json.dumps({"viewer": [{"resource": "projects/p", "role": "roles/owner"}]}))
    unknown = _serve("--host", "0.0.0.0", "--oidc-issuer", "https://kc.example/realms/r",
                     "--oidc-audience", "pacs", "--oidc-jwks", "https://kc.example/certs",
                     "--oidc-role-map", str(roles))
    assert unknown.returncode != 0
    assert "--oidc-role-map names unknown roles ['roles/owner']" in unknown.stderr


def _client(server: LiveServer, token: str) -> Any:
    from google.oauth2.credentials import Credentials
    from googleapiclient.discovery import build
    service = build("healthcare", "v1", credentials=Credentials(token), static_discovery=True,
                    client_options={"api_endpoint": server.base + "/"})
    return service.projects().locations().datasets()


def test_iam_policies_grant_roles_on_stores_and_datasets(server: LiveServer) -> None:
    """google-api-python-client with a bearer token: an administrator sets a store's policy;
    its dicomViewer reads and cannot delete; a dataset's policy reaches its stores; a stale
    etag is refused; testIamPermissions tells what is held."""
    from googleapiclient.errors import HttpError
    admin, alice = _client(server, "admin-token"), _client(server, "alice-token")
    location = "projects/iam/locations/l"
    admin.create(parent=location, datasetId="d", body={}).execute()
    admin.dicomStores().create(parent=f"{location}/datasets/d", dicomStoreId="s",
                               body={}).execute()
    store = f"{location}/datasets/d/dicomStores/s"
    web = f"{server.base}/v1/{store}/dicomWeb"
    alice_headers = {"Authorization": "Bearer alice-token"}
    assert requests.get(f"{web}/studies", headers=alice_headers).status_code == 403
    policy = admin.dicomStores().getIamPolicy(resource=store).execute()
    assert policy["version"] == 1 and policy["etag"]
    set_ = admin.dicomStores().setIamPolicy(resource=store, body={"policy": {
        "bindings": [{"role": "roles/healthcare.dicomViewer",
                      "members": ["user:alice@example.com"]}],
        "etag": policy["etag"]}}).execute()
    assert set_["bindings"][0]["members"] == ["user:alice@example.com"]
    assert requests.get(f"{web}/studies", headers=alice_headers).status_code == 204
    stored = requests.post(f"{web}/studies", data=b"x", headers={
        **alice_headers, "Content-Type": "application/dicom"})
    assert stored.status_code == 403
    assert "dicomWebWrite" in stored.json()["error"]["message"]
    assert requests.delete(f"{web}/studies/1.2.3", headers=alice_headers).status_code == 403
    held = alice.dicomStores().testIamPermissions(resource=store, body={"permissions": [
        "healthcare.dicomStores.dicomWebRead", "healthcare.dicomStores.dicomWebDelete"]}
    ).execute()
    assert held == {"permissions": ["healthcare.dicomStores.dicomWebRead"]}
    with pytest.raises(HttpError) as stale:  # the etag read before the change
        admin.dicomStores().setIamPolicy(resource=store, body={"policy": {
            "bindings": [], "etag": policy["etag"]}}).execute()
    assert stale.value.resp.status == 409
    with pytest.raises(HttpError) as denied:  # alice may not change policies
        alice.dicomStores().setIamPolicy(resource=store, body={"policy": {"bindings": []}}
                                         ).execute()
    assert denied.value.resp.status == 403
    # a dataset's policy applies to the stores under it
    dataset_policy = admin.getIamPolicy(resource=f"{location}/datasets/d").execute()
    admin.setIamPolicy(resource=f"{location}/datasets/d", body={"policy": {
        "bindings": [{"role": "roles/healthcare.dicomEditor",
                      "members": ["user:alice@example.com"]}],
        "etag": dataset_policy["etag"]}}).execute()
    assert requests.delete(f"{web}/studies/1.2.3", headers=alice_headers).status_code == 404
    with pytest.raises(HttpError) as unknown_role:
        admin.setIamPolicy(resource=f"{location}/datasets/d", body={"policy": {
            "bindings": [{"role": "roles/owner-ish", "members": ["user:x@y"]}]}}).execute()
    assert unknown_role.value.resp.status == 400


def _preflight(base: str, origin: str) -> requests.Response:
    return requests.options(f"{base}/dicomweb/studies", headers={
        "Origin": origin, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})


def test_cors_lets_configured_viewers_in_and_nobody_else(tmp_path: Path) -> None:
    """With authentication on, "*" allows nobody; a configured origin may send
    Authorization; no origin is ever allowed credentials (cookies)."""
    settings = Settings(data_dir=tmp_path / "data", auth_tokens=tuple(TOKENS.items()),
                        cors_origins=("*", "https://viewer.example"))
    with ServerThread(settings) as running:
        base = f"http://127.0.0.1:{running.port}"
        viewer = _preflight(base, "https://viewer.example")
        assert viewer.headers["access-control-allow-origin"] == "https://viewer.example"
        assert "authorization" in viewer.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in viewer.headers
        other = _preflight(base, "https://evil.example")
        assert other.headers.get("access-control-allow-origin") not in (
            "*", "https://evil.example")
        answer = requests.get(f"{base}/dicomweb/studies", headers={
            "Origin": "https://evil.example", "Authorization": "Bearer admin-token"})
        assert "access-control-allow-origin" not in answer.headers


def test_forwarded_headers_only_from_trusted_proxies(tmp_path: Path) -> None:
    """A client cannot make the server hand out URLs of a host of its choosing; a pinned
    public URL wins over everything."""
    data = corpus_bytes("CT_small.dcm")
    forged = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
              "Content-Type": "application/dicom", "Accept": "application/dicom+json"}
    for trusted, public, expected in (
            (("127.0.0.1",), "", "https://evil.example/dicomweb"),  # a proxy on this host
            ((), "", "http://127.0.0.1:{port}/dicomweb"),  # nobody trusted
            (("*",), "https://pacs.example/base", "https://pacs.example/base/dicomweb")):
        settings = Settings(data_dir=tmp_path / f"d{len(trusted)}{bool(public)}",
                            forwarded_allow_ips=trusted, public_url=public)
        with ServerThread(settings) as running:
            answer = requests.post(f"http://127.0.0.1:{running.port}/dicomweb/studies",
                                   data=data, headers=forged).json()
            url = answer["00081190"]["Value"][0]
            assert url.startswith(expected.format(port=running.port) + "/studies/"), url


def test_the_audit_log_says_who_did_what_without_tokens(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    settings = Settings(data_dir=tmp_path / "data", auth_tokens=tuple(TOKENS.items()),
                        admins=("user:admin@example.com",), audit_log=audit)
    store = "projects/local/locations/local/datasets/default/dicomStores/default"
    with ServerThread(settings) as running:
        base = f"http://127.0.0.1:{running.port}"
        admin = {"Authorization": "Bearer admin-token"}
        stored = requests.post(f"{base}/dicomweb/studies", data=corpus_bytes("CT_small.dcm"),
                               headers={**admin, "Content-Type": "application/dicom",
                                        "Accept": "application/dicom+json"})
        study = re.search(r"/studies/([0-9.]+)", stored.json()["00081190"]["Value"][0])[1]
        requests.get(f"{base}/dicomweb/studies?access_token=alice-token")
        requests.delete(f"{base}/dicomweb/studies/{study}",
                        headers={"Authorization": "Bearer alice-token"})
        requests.get(f"{base}/dicomweb/studies", headers={"Authorization": "Bearer forged"})
        requests.post(f"{base}/v1/{store}:setIamPolicy", headers=admin, json={"policy": {
            "bindings": [{"role": "roles/healthcare.dicomViewer",
                          "members": ["user:alice@example.com"]}]}})
        requests.get(f"{base}/healthz")
    text = audit.read_text()
    assert "token" not in text and "forged" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [(e["identity"], e["method"], e["permission"].rsplit(".", 1)[-1], e["status"],
             e["outcome"]) for e in lines] == [
        ("user:admin@example.com", "POST", "dicomWebWrite", 200, "success"),
        ("user:alice@example.com", "GET", "dicomWebRead", 403, "denied"),
        ("user:alice@example.com", "DELETE", "dicomWebDelete", 403, "denied"),
        (None, "GET", "dicomWebRead", 401, "denied"),
        ("user:admin@example.com", "POST", "setIamPolicy", 200, "success")]
    assert all(e["resource"] == store for e in lines)
    assert lines[2]["path"] == f"/dicomweb/studies/{study}" and lines[1]["path"] == \
        "/dicomweb/studies"
    assert all(e["client"] == "127.0.0.1" and e["time"].endswith("+00:00") for e in lines)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_tokens_never_reach_the_server_log(tmp_path: Path, log_format: str) -> None:
    """`pacs serve` with its access log on, in text or JSON lines: each request is one line
    with its duration, and a token sent as `access_token` is redacted."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"s3cr3t-t0ken": "user:admin@example.com"}))
    with served("--data", str(tmp_path / "data"), "--auth-tokens", str(tokens), "--admin",
                "user:admin@example.com", "--workers", "1", "--log-format",
                log_format) as server:
        base = server.base
        found = requests.get(f"{base}/dicomweb/studies?limit=1&access_token=s3cr3t-t0ken")
        assert found.status_code == 204
        assert requests.get(f"{base}/dicomweb/studies",
                            headers={"Authorization": "Bearer s3cr3t-t0ken"}).status_code == 204
    output = server.output
    assert "access_token=REDACTED" in output  # the request was logged, without its token
    assert "s3cr3t" not in output
    if log_format == "json":
        lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert all(line.startswith("{") for line in output.splitlines()
                   if line and not line.startswith("pacs: "))
        [logged] = [line for line in lines if line["logger"] == "pacs.access"
                    and "REDACTED" in line["path"]]
        assert (logged["method"], logged["status"]) == ("GET", 204)
        assert logged["duration_ms"] >= 0 and logged["bytes_out"] == 0


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"policy": 5}', b'{"policy": {"bindings": 5}}',
    b'{"policy": {"bindings": "roles/healthcare.dicomViewer"}}',
    b'{"policy": {"bindings": [{"role": "roles/owner", "members": ["user:a@example.com"]}]}}',
    b'{"policy": {"bindings": [{"role": "roles/healthcare.dicomViewer", "members": "user:a"}]}}',
    b'{"policy": {"bindings": [{"role": "roles/healthcare.dicomViewer", "members": ["a@x"]}]}}',
], ids=["json", "array", "policy", "bindings-number", "bindings-string", "role", "members",
        "member-syntax"])
def test_a_malformed_policy_is_refused_and_changes_nothing(server: LiveServer,
                                                           body: bytes) -> None:
    url = f"{server.base}/v1/projects/bad/locations/l/datasets/d"
    admin = {"Authorization": "Bearer admin-token", "Content-Type": "application/json"}
    before = requests.get(f"{url}:getIamPolicy", headers=admin).json()
    refused = requests.post(f"{url}:setIamPolicy", data=body, headers=admin)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert requests.get(f"{url}:getIamPolicy", headers=admin).json() == before
