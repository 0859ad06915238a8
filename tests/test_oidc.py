"""OIDC bearer tokens (issue 11): JWTs signed with keys made here, checked by a real server
against a JWKS file or a JWKS URL served over real HTTP; Keycloak-style realm roles mapped to
Google roles."""

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pacs.settings import Settings
from tests.conftest import LiveServer, ServerThread
from tests.dataset_factories import corpus_bytes

ISSUER = "https://keycloak.example/realms/shanoir-ng"
AUDIENCE = "pacs"
STORE = "projects/local/locations/local/datasets/default/dicomStores/default"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
    return {**json.loads(algorithm.to_jwk(key.public_key())), "kid": kid, "alg": alg,
            "use": "sig"}


def _token(key: Any = RSA_KEY, kid: str = "rsa", alg: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, "iat": now,
            "email": "alice@example.com", **claims}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("oidc")
    jwks = root / "jwks.json"
    jwks.write_text(json.dumps({"keys": [_jwk(RSA_KEY, "rsa", "RS256"),
                                         _jwk(EC_KEY, "ec", "ES256")]}))
    settings = Settings(data_dir=root / "data", oidc_issuer=ISSUER, oidc_audience=AUDIENCE,
                        oidc_jwks=str(jwks), oidc_roles_claim="realm_access.roles",
                        oidc_role_map=(("viewer", STORE, "roles/healthcare.dicomViewer"),),
                        admins=("user:admin@example.com",))
    with ServerThread(settings) as running:
        yield LiveServer(f"http://127.0.0.1:{running.port}", root / "data")


def _search(server: LiveServer, token: str) -> requests.Response:
    return requests.get(f"{server.dicomweb}/studies",
                        headers={"Authorization": f"Bearer {token}"})


# tokens are made when the test runs (claims are relative to now): (signing key, kid, alg,
# claims relative to a fresh token), or a literal string
VALID = {"rs256": (RSA_KEY, "rsa", "RS256", {}),
         "es256": (EC_KEY, "ec", "ES256", {}),
         "skew": (RSA_KEY, "rsa", "RS256", {"exp": -10})}  # expired, within the clock skew
INVALID = {"expired": (RSA_KEY, "rsa", "RS256", {"exp": -3600}),
           "not-yet": (RSA_KEY, "rsa", "RS256", {"nbf": 3600}),
           "audience": (RSA_KEY, "rsa", "RS256", {"aud": "someone-else"}),
           "issuer": (RSA_KEY, "rsa", "RS256", {"iss": "https://evil.example/realms/x"}),
           "kid": (RSA_KEY, "unknown", "RS256", {}),
           "foreign-key": (OTHER_KEY, "rsa", "RS256", {}),  # a key never published
           "hs256": ("s" * 32, "rsa", "HS256", {}),  # a symmetric algorithm: never accepted
           "no-email": (RSA_KEY, "rsa", "RS256", {"email": None})}


def _made(key: Any, kid: str, alg: str, relative: dict[str, Any]) -> str:
    now = int(time.time())
    claims = {k: now + v if k in ("exp", "nbf") else v for k, v in relative.items()}
    return _token(key, kid, alg, **claims)


@pytest.mark.parametrize("case", VALID)
def test_a_valid_token_authenticates(server: LiveServer, case: str) -> None:
    # alice holds no role: authenticated, so denied rather than unauthenticated
    answer = _search(server, _made(*VALID[case]))
    assert answer.status_code == 403, answer.text
    assert "dicomWebRead" in answer.json()["error"]["message"]


@pytest.mark.parametrize("case", [*INVALID, "tampered", "garbage"])
def test_an_invalid_token_is_unauthenticated(server: LiveServer, case: str) -> None:
    token = {"tampered": _token()[:-4] + "AAAA", "garbage": "not-a-jwt"}.get(case) or \
        _made(*INVALID[case])
    answer = _search(server, token)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["status"] == "UNAUTHENTICATED"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_keycloak_realm_roles_grant_read_and_nothing_more(server: LiveServer) -> None:
    admin = _token(email="admin@example.com")
    stored = requests.post(f"{server.dicomweb}/studies", data=corpus_bytes("CT_small.dcm"),
                           headers={"Authorization": f"Bearer {admin}",
                                    "Content-Type": "application/dicom"})
    assert stored.status_code == 200, stored.text
    viewer = _token(email="bob@example.com", realm_access={"roles": ["viewer", "x"]})
    found = _search(server, viewer)
    assert found.status_code == 200 and len(found.json()) == 1
    study = found.json()[0]["0020000D"]["Value"][0]
    denied = requests.delete(f"{server.dicomweb}/studies/{study}",
                             headers={"Authorization": f"Bearer {viewer}"})
    assert denied.status_code == 403
    assert "dicomWebDelete" in denied.json()["error"]["message"]
    # the same person without the role in the token reads nothing
    assert _search(server, _token(email="bob@example.com")).status_code == 403


class _Keys(http.server.BaseHTTPRequestHandler):
    published: list[dict[str, Any]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = json.dumps({"keys": self.published}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_keys_rotate_at_a_jwks_url(tmp_path: Path) -> None:
    """A token signed with a key the issuer publishes later is accepted once it is published:
    an unknown `kid` makes the server fetch the keys again."""
    _Keys.published = [_jwk(RSA_KEY, "rsa", "RS256")]
    keys = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Keys)
    threading.Thread(target=keys.serve_forever, daemon=True).start()
    try:
        settings = Settings(data_dir=tmp_path, oidc_issuer=ISSUER, oidc_audience=AUDIENCE,
                            oidc_jwks=f"http://127.0.0.1:{keys.server_port}/certs",
                            oidc_jwks_refresh_seconds=0.0, admins=("user:alice@example.com",))
        with ServerThread(settings) as running:
            live = LiveServer(f"http://127.0.0.1:{running.port}", tmp_path)
            assert _search(live, _token()).status_code == 204  # empty store, allowed
            rotated = _token(OTHER_KEY, "next")
            assert _search(live, rotated).status_code == 401
            _Keys.published = [_jwk(OTHER_KEY, "next", "RS256")]
            assert _search(live, rotated).status_code == 204
    finally:
        keys.shutdown()
