#!/usr/bin/env python3
"""OHIF v3 in headless Chromium against our server with authentication on.

    python conformance/ohif/auth_check.py [--scenarios token no-token] [--out DIR] [--keep-data]

1. Starts `python -m pacs serve` on a free port with a temporary data directory, a tokens file
   ({"viewer-token": "user:viewer@example.com", "admin-token": "user:admin@example.com"}),
   `--admin user:admin@example.com` and `--cors-origin` set to the viewer's origin.
2. With the admin token: STOWs pydicom's CT_small.dcm to /dicomweb/studies and grants
   user:viewer@example.com roles/healthcare.dicomViewer on the default store (setIamPolicy).
   Checks the API answers first: no token -> 401 with `WWW-Authenticate: Bearer`; the viewer
   before the grant -> 403; after it -> 200 with the study; the CORS preflight for
   `Authorization` from the viewer's origin is allowed.
3. Serves the prebuilt OHIF 3.13.2 on its own origin, with the classic DICOMweb data source
   pointed directly (cross-origin) at our /dicomweb, and runs auth_drive.js (playwright-core,
   no request interception, so every header is one OHIF sent itself):
     token     app-config registers a tiny extension whose preRegistration hook sets OHIF's
               userAuthenticationService implementation
               getAuthorizationHeader: () => ({Authorization: 'Bearer viewer-token'})
               -> the study list shows the study, the viewport renders (non-black), every
                  DICOMweb request carried the Bearer token, none answered 401/403.
     no-token  the same app-config without that extension
               -> the DICOMweb requests answer 401 (WWW-Authenticate: Bearer), carry no
                  Authorization, the study list stays empty and the viewer (opened by URL)
                  renders nothing.
4. Prints an OK/FAIL summary; exit status 0 only if every scenario passed.

Why userAuthenticationService and not `requestOptions`: in OHIF 3.13 the DICOMweb data source
takes its headers only from userAuthenticationService.getAuthorizationHeader()
(DicomWebDataSource initialize/query/retrieve, the cornerstone WADO-RS image loader and the
thumbnail fetches); `requestOptions.auth` is read only by @ohif/core's legacy
DICOMWeb.getAuthorizationHeader(server), which the data source never calls with a server
config. `oidc` in app-config uses the same service (Bearer user.access_token); a static
token through an extension is the no-login equivalent.

Screenshots and logs go to --out (default conformance/ohif/shots/auth-<time>/, gitignored).
The OHIF recipe is installed into $OHIF_WORK (default /tmp/ohif), the first time only.
"""

import argparse
import collections
import json
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from google_check import (  # noqa: E402
    app_config,
    drive,
    free_port,
    norm,
    prepare,
    serve_viewer,
    start_server,
    stop,
    wait_http,
    write_server_requests,
)

REPO = HERE.parent.parent
VIEWER_ID, ADMIN_ID = "user:viewer@example.com", "user:admin@example.com"
TOKENS = {"viewer-token": VIEWER_ID, "admin-token": ADMIN_ID}
STORE_NAME = "projects/local/locations/local/datasets/default/dicomStores/default"
SCENARIOS = ("token", "no-token")

# The extension a deployment would put in app-config.js to send a static Bearer token:
# OHIF's userAuthenticationService is what the DICOMweb data source asks for its headers.
AUTH_EXTENSION = """
const bearerTokenExtension = {
  id: 'local.bearer-token',
  preRegistration: ({ servicesManager }) => {
    const { userAuthenticationService } = servicesManager.services;
    userAuthenticationService.setServiceImplementation({
      getAuthorizationHeader: () => ({ Authorization: 'Bearer ' + %(token)s }),
    });
  },
};
"""

# The classic-DICOMweb keys of the data source (the rest is google_check.app_config's template).
AUTH_CONFIGURATION = """
thumbnailRendering: 'wadors',
supportsFuzzyMatching: false,
supportsWildcard: true,
bulkDataURI: { enabled: true },
"""


def call(method, url, token=None, body=None, headers=None, content_type=None):
    """-> (status, headers, text)"""
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    data = body
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    if content_type:
        h["Content-Type"] = content_type
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode(errors="replace")


def stow(root: str, path: Path, token: str):
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return call(
        "POST",
        f"{root}/studies",
        token,
        body,
        content_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
    )


class Checks:
    def __init__(self):
        self.problems: list[str] = []

    def check(self, good: bool, what: str) -> bool:
        print(f"  {'ok  ' if good else 'FAIL'} {what}", flush=True)
        if not good:
            self.problems.append(what)
        return good


def api_checks(base: str, origin: str, study: str, c: Checks) -> None:
    root = f"{base}/dicomweb"
    st, h, text = call("GET", f"{root}/studies")
    c.check(
        st == 401 and (h.get("WWW-Authenticate") or "").startswith("Bearer"),
        f"QIDO without a token -> {st}, WWW-Authenticate: {h.get('WWW-Authenticate')} "
        f"{text.strip()[:120]}",
    )
    st, h, text = call("GET", f"{root}/studies", "not-a-token")
    c.check(st == 401, f"QIDO with an unknown token -> {st}")
    st, h, text = call("GET", f"{root}/studies", "viewer-token")
    c.check(st == 403, f"QIDO as the viewer before the grant -> {st} {text.strip()[:160]}")
    st, h, text = call(
        "POST",
        f"{base}/v1/{STORE_NAME}:setIamPolicy",
        "admin-token",
        {
            "policy": {
                "bindings": [{"role": "roles/healthcare.dicomViewer", "members": [VIEWER_ID]}]
            }
        },
    )
    c.check(st == 200, f"setIamPolicy (dicomViewer for {VIEWER_ID}) as admin -> {st} {text[:160]}")
    st, h, text = call("GET", f"{root}/studies", "viewer-token")
    found = st == 200 and study in text
    c.check(found, f"QIDO as the viewer after the grant -> {st}, study listed: {study in text}")
    st, h, text = stow(root, Path(__file__), "viewer-token")  # any body; must be refused first
    c.check(st == 403, f"STOW as the viewer (read-only role) -> {st}")
    st, h, _ = call(
        "OPTIONS",
        f"{root}/studies",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    allow_origin = h.get("Access-Control-Allow-Origin")
    allow_headers = (h.get("Access-Control-Allow-Headers") or "").lower()
    c.check(
        200 <= st < 300 and allow_origin == origin and "authorization" in allow_headers,
        f"CORS preflight from {origin} for Authorization -> {st}, "
        f"Allow-Origin: {allow_origin}, Allow-Headers: {h.get('Access-Control-Allow-Headers')}",
    )
    st, h, _ = call("GET", f"{root}/studies", headers={"Origin": origin})
    c.check(
        st == 401 and h.get("Access-Control-Allow-Origin") == origin,
        f"401 carries CORS headers (so the browser can read it) -> {st}, "
        f"Allow-Origin: {h.get('Access-Control-Allow-Origin')}",
    )


def report(scenario: str, out: Path, c: Checks) -> None:
    res = json.load(open(out / f"auth-{scenario}.json"))
    recs = [r for r in res["requests"] if r["path"].startswith("/dicomweb")]
    shapes: dict = collections.OrderedDict()
    for r in recs:
        auth = r.get("authorization") or ""
        a = "Bearer viewer-token" if auth == "Bearer viewer-token" else (auth[:20] or "none")
        key = (r["method"], norm(r["path"]), a)
        shapes.setdefault(key, collections.Counter())[r.get("status") or r.get("error")] += 1
    print(f"  DICOMweb requests OHIF made to our server: {len(recs)} (Authorization, statuses)")
    for (m, p, a), st in shapes.items():
        print(f"    {sum(st.values()):3d}x {m} {p}  [Authorization: {a}] -> {dict(st)}")
    bad = [r for r in recs if r.get("status") is None or r["status"] >= 400]
    for r in bad[:5]:
        print(
            f"    {r['method']} {r['path']} -> {r.get('status') or r.get('error')} "
            f"WWW-Authenticate: {r.get('wwwAuthenticate')} body: {(r.get('body') or '')[:200]!r}"
        )
    errs = [m for m in res.get("console", []) if m.startswith(("[error]", "[pageerror]"))]
    print(f"  console errors: {len(errs)}")
    for m in errs[:6]:
        print("    " + m[:240])
    for s in res["steps"]:
        extra = {
            k: s[k]
            for k in (
                "ok",
                "qidoAnswered",
                "listed",
                "emptyMessage",
                "errorDialog",
                "rendered",
                "url",
                "error",
            )
            if k in s
        }
        if s["name"] == "render-check":
            extra["canvases"] = s.get("canvases")
        print(f"  step {s['name']}: {json.dumps(extra)[:400]}")
        for k in ("screenshot", "viewport"):
            if s.get(k):
                print(f"      {s[k]}")
    steps = {s["name"]: s for s in res["steps"]}
    listed = steps.get("studylist", {}).get("listed")
    rendered = steps.get("render-check", {}).get("rendered")
    qido = [r for r in recs if r["method"] == "GET" and r["path"] == "/dicomweb/studies"]
    c.check(bool(qido), f"OHIF queried GET /dicomweb/studies ({len(qido)}x)")
    if scenario == "token":
        c.check(bool(listed), "study list shows the study")
        c.check(bool(rendered), "viewport rendered (non-black canvas)")
        frames = [r for r in recs if "/frames/" in r["path"] and r.get("status") == 200]
        meta = [r for r in recs if r["path"].endswith("/metadata") and r.get("status") == 200]
        c.check(bool(meta and frames), f"metadata ({len(meta)}x) and frames ({len(frames)}x) 200")
        no_auth = [r for r in recs if r.get("authorization") != "Bearer viewer-token"]
        c.check(
            not no_auth,
            f"every DICOMweb request carried 'Authorization: Bearer viewer-token' "
            f"({len(recs) - len(no_auth)}/{len(recs)})",
        )
        refused = [r for r in recs if r.get("status") in (401, 403)]
        c.check(not refused, f"no request answered 401/403 ({len(refused)})")
        failed = [r for r in recs if r.get("status") is None or r["status"] >= 400]
        c.check(not failed, f"no request failed or answered >= 400 ({len(failed)})")
    else:
        c.check(not listed, "study list stays empty")
        c.check(not rendered, "viewer opened by URL renders nothing")
        with_auth = [r for r in recs if r.get("authorization")]
        c.check(not with_auth, f"no request carried Authorization ({len(with_auth)})")
        non401 = [r for r in recs if r.get("status") != 401]
        c.check(
            bool(recs) and not non401,
            f"every DICOMweb request answered 401 ({len(recs) - len(non401)}/{len(recs)}); "
            f"others: {[(r['path'], r.get('status') or r.get('error')) for r in non401][:4]}",
        )
        bearer = [r for r in recs if (r.get("wwwAuthenticate") or "").startswith("Bearer")]
        c.check(
            len(bearer) == len(recs),
            f"401s carry WWW-Authenticate: Bearer ({len(bearer)}/{len(recs)})",
        )
    if not res.get("ok"):
        c.problems.append("browser steps did not complete as expected (see the steps above)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("OHIF_WORK", "/tmp/ohif")))
    ap.add_argument("--keep-data", action="store_true", help="keep the temporary data directory")
    a = ap.parse_args()
    out = prepare(a.out, "auth", a.work)
    if out is None:
        return 2
    import pydicom.data

    ct = Path(pydicom.data.get_testdata_file("CT_small.dcm", download=False))
    ds = pydicom.dcmread(ct, stop_before_pixels=True)
    study = str(ds.StudyInstanceUID)
    match = str(ds.PatientName).split("^")[0]

    data = Path(tempfile.mkdtemp(prefix="pacs-auth-check-"))
    (data / "tokens.json").write_text(json.dumps(TOKENS))
    port, vport = free_port(), free_port()
    base, viewer_origin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{vport}"
    server, server_log = start_server(
        out,
        data / "pacs",
        port,
        [
            "--auth-tokens",
            str(data / "tokens.json"),
            "--admin",
            ADMIN_ID,
            "--cors-origin",
            viewer_origin,
        ],
    )
    viewer = None
    checks: dict[str, Checks] = {}
    try:
        if not wait_http(f"{base}/healthz", 60, server):
            print(f"server did not start, see {out / 'pacs-server.log'}")
            return 2
        print(f"server: {base} (data {data}), viewer origin: {viewer_origin}", flush=True)
        st, _, text = stow(f"{base}/dicomweb", ct, "admin-token")
        print(f"STOW {ct.name} as admin -> {st} {text.strip()[:120]}", flush=True)
        if st != 200:
            return 2
        print("=== API checks (urllib) ===", flush=True)
        checks["api"] = c = Checks()
        api_checks(base, viewer_origin, study, c)
        for scenario in a.scenarios:
            tok = scenario == "token"
            cfg = out / f"app-config.{scenario}.js"
            cfg.write_text(
                app_config(
                    "classic DICOMweb data source, our server with auth on",
                    f"{base}/dicomweb",
                    "our server (authenticated)",
                    "pacs",
                    AUTH_CONFIGURATION,
                    extension_js=AUTH_EXTENSION % {"token": json.dumps("viewer-token")}
                    if tok
                    else "",
                    extensions="bearerTokenExtension" if tok else "",
                )
            )
            viewer = serve_viewer(a.work, cfg, vport, out, scenario)
            if viewer is None:
                return 2
            how = "Bearer viewer-token via userAuthenticationService" if tok else "no token"
            print(f"=== scenario {scenario} ({how}) ===", flush=True)
            cmd = [
                "node",
                str(HERE / "auth_drive.js"),
                "--viewer",
                viewer_origin,
                "--server",
                base,
                "--out",
                str(out),
                "--scenario",
                scenario,
                "--study",
                study,
                "--match",
                match,
                "--playwright",
                str(a.work / "driver" / "node_modules" / "playwright-core"),
            ]
            rc = drive(cmd, out / f"drive-{scenario}.log", 300)
            stop(viewer)
            viewer = None
            checks[scenario] = c = Checks()
            if not (out / f"auth-{scenario}.json").exists():
                c.check(False, f"driver exited {rc} without a result; see drive-{scenario}.log")
                continue
            report(scenario, out, c)
    finally:
        stop(viewer)
        stop(server)
        server_log.close()
        if not a.keep_data:
            shutil.rmtree(data, ignore_errors=True)
    seen = write_server_requests(out)
    pre = sum(n for (m, _, s), n in seen.items() if m == "OPTIONS")
    print(f"server access log: {pre} OPTIONS preflights (browser-native CORS); see")
    print(f"  {out}/server-requests.txt")
    print("=== summary ===")
    ok = bool(checks) and all(not c.problems for c in checks.values())
    for name, c in checks.items():
        print(f"{name}: {'OK' if not c.problems else 'FAIL'}")
        for p in c.problems:
            print(f"  - {p}")
    print(f"screenshots and logs: {out}")
    print("RESULT:", "OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
