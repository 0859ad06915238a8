#!/usr/bin/env python3
"""OHIF v3's Google Cloud Healthcare data source against our server, in headless Chromium.

    python conformance/ohif/google_check.py [--scenarios picker preconfigured] [--out DIR]

1. Starts `python -m pacs serve` on a free port with a temporary data directory.
2. Creates dataset `ds` and the full-profile store `ct` in projects/demo/locations/us-central1
   with the management API and STOWs a synthetic CT series (make_ct.py, 512x512) into it.
3. For each scenario, serves the prebuilt OHIF 3.13.2 with an app-config whose data source is
   OHIF's own Google one (config/google.js, with configurationAPI
   'ohif.dataSourceConfigurationAPI.google'; no `oidc`, so no Google login) and runs
   google_drive.js, which routes every request to
   https://cloudresourcemanager.googleapis.com and https://healthcare.googleapis.com to our server:
     picker         roots "https://healthcare.googleapis.com/v1/projects": OHIF opens its picker;
                    pick demo → us-central1 → ds → ct, study list, click the study, Basic Viewer.
     preconfigured  roots name the store: OHIF restores the picker items, lists the study, and the
                    viewer is opened by URL with ?token=… (DICOMweb requests carry a Bearer token).
4. Prints every request OHIF made to our server (method, path, status; deduplicated), checks the
   picker / management / DICOMweb requests it needs, and exits 0 only if everything worked.

Screenshots, request logs and the server log go to --out (default conformance/ohif/shots/
google-<time>/, gitignored). The OHIF recipe is installed once into $OHIF_WORK (default /tmp/ohif)
from ../shared/tools/ohif, as run_ohif_check.sh does.
"""

import argparse
import collections
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PROJECT, LOCATION, DATASET, STORE = "demo", "us-central1", "ds", "ct"
STORE_NAME = f"projects/{PROJECT}/locations/{LOCATION}/datasets/{DATASET}/dicomStores/{STORE}"
GOOGLE = "https://healthcare.googleapis.com/v1"
CRM = "https://cloudresourcemanager.googleapis.com/v1"
UID = r"[0-9]+(?:\.[0-9]+)+"

# OHIF's config/google.js data source (3.13.2 dist/google.js), roots filled in per scenario;
# `oidc` is left out, so OHIF needs no login and sends no Authorization header (but see ?token=).
APP_CONFIG_TEMPLATE = """/** OHIF v3 app-config: %(title)s */
%(extension_js)swindow.config = {
  routerBasename: '/',
  extensions: [%(extensions)s],
  modes: [],
  customizationService: {},
  showStudyList: true,
  maxNumberOfWebWorkers: 2,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: false,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  investigationalUseDialog: { option: 'never' },
  showErrorDetails: 'always',
  defaultDataSourceName: 'dicomweb',
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'dicomweb',
      configuration: {
        friendlyName: %(friendly_name)s,
        name: %(name)s,
        wadoUriRoot: %(root)s,
        qidoRoot: %(root)s,
        wadoRoot: %(root)s,
        qidoSupportsIncludeField: true,
        imageRendering: 'wadors',
        enableStudyLazyLoad: true,
        omitQuotationForMultipartRequest: true,
%(extra_configuration)s      },
    },
  ],
  httpErrorHandler: error => { console.warn('httpErrorHandler', error && error.status); },
};
"""


def app_config(
    title, root, friendly_name, name, extra_configuration="", extension_js="", extensions=""
):
    """One OHIF v3 app-config.js with a single dicomweb data source (shared with auth_check.py).

    `extra_configuration` is JS object lines (`key: value,`) added to the data source's
    configuration; `extension_js` is JS placed before `window.config`, `extensions` the list body.
    """
    lines = extra_configuration.strip().splitlines()
    extra = "".join(f"        {line.strip()}\n" for line in lines)
    return APP_CONFIG_TEMPLATE % {
        "title": title,
        "extension_js": extension_js.strip() + "\n" if extension_js.strip() else "",
        "extensions": extensions,
        "friendly_name": json.dumps(friendly_name),
        "name": json.dumps(name),
        "root": json.dumps(root),
        "extra_configuration": extra,
    }


# The Google-specific keys of OHIF's config/google.js data source.
GOOGLE_CONFIGURATION = """
thumbnailRendering: 'rendered',
thumbnailRequestStrategy: 'fetch',
supportsFuzzyMatching: true,
supportsWildcard: false,
dicomUploadEnabled: true,
configurationAPI: 'ohif.dataSourceConfigurationAPI.google',
"""
ROOTS = {"picker": f"{GOOGLE}/projects", "preconfigured": f"{GOOGLE}/{STORE_NAME}/dicomWeb"}

# Requests each scenario must have made, answered 2xx: (label, method, host, path regex).
DW = re.escape(f"/v1/{STORE_NAME}/dicomWeb")
NEEDED = {
    "picker": [
        ("CRM projects.list", "GET", "cloudresourcemanager", r"/v1/projects$"),
        ("locations.list", "GET", "healthcare", rf"/v1/projects/{PROJECT}/locations$"),
        (
            "datasets.list",
            "GET",
            "healthcare",
            rf"/v1/projects/{PROJECT}/locations/{LOCATION}/datasets$",
        ),
        (
            "dicomStores.list",
            "GET",
            "healthcare",
            rf"/v1/projects/{PROJECT}/locations/{LOCATION}/datasets/{DATASET}/dicomStores$",
        ),
    ],
    "preconfigured": [
        ("CRM projects.get", "GET", "cloudresourcemanager", rf"/v1/projects/{PROJECT}$")
    ],
}
NEEDED_DICOMWEB = [
    ("QIDO studies", "GET", "healthcare", DW + r"/studies$"),
    ("QIDO series", "GET", "healthcare", DW + r"/studies/{study}/series$"),
    ("series metadata", "GET", "healthcare", DW + r"/studies/{study}/series/{series}/metadata$"),
    (
        "frames",
        "GET",
        "healthcare",
        DW + r"/studies/{study}/series/{series}/instances/{instance}/frames/{n}$",
    ),
]
# Failures that follow from the scenario itself, not from the server.
EXPECTED_FAILURES = {
    "picker": [
        (
            "GET",
            "healthcare",
            r"/v1/projects/studies$",
            404,
            "study list queried the partial root /v1/projects before a store was picked",
        )
    ],
}


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, seconds: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.25)
    return False


def call(method: str, url: str, body: dict | None = None) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"} if data else {}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def serve_viewer(
    work: Path, config: Path, port: int, out: Path, scenario: str
) -> subprocess.Popen | None:
    """The recipe's serve.js serving OHIF with `config` on `port`; None if it did not start."""
    viewer = subprocess.Popen(
        ["node", str(work / "serve.js"), "--dist", str(work / "www"), "--app-config",
         str(config), "--port", str(port), "--log", str(out / f"serve-{scenario}.jsonl")],
        stdout=open(out / f"serve-{scenario}.log", "w"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    if wait_http(f"http://127.0.0.1:{port}/", 30, viewer):
        return viewer
    print(f"serve.js did not start, see {out}/serve-{scenario}.log")
    stop(viewer)
    return None


def preflight(url: str, origin: str) -> tuple[bool, str]:
    """The CORS preflight a browser without request interception would send before a request
    carrying `Authorization: Bearer` (Playwright answers preflights of routed requests itself)."""
    req = urllib.request.Request(
        url,
        method="OPTIONS",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, h = r.status, r.headers
    except urllib.error.HTTPError as e:
        status, h = e.code, e.headers
    allow_origin = h.get("access-control-allow-origin")
    allow_headers = (h.get("access-control-allow-headers") or "").lower()
    # a bare `*` in Access-Control-Allow-Headers does not cover Authorization (Fetch standard)
    good = (
        200 <= status < 300 and allow_origin in ("*", origin) and "authorization" in allow_headers
    )
    return good, (
        f"OPTIONS {url} -> {status}, Access-Control-Allow-Origin: {allow_origin}, "
        f"Access-Control-Allow-Headers: {h.get('access-control-allow-headers')}, "
        f"Access-Control-Allow-Methods: {h.get('access-control-allow-methods')}"
    )


def prepare(out: Path | None, label: str, work: Path) -> Path | None:
    """The run's output directory (made and printed; `shots/LABEL-time` by default) once the
    OHIF recipe is installed in `work`; None, said why, if installing failed."""
    out = (out or HERE / "shots" / time.strftime(f"{label}-%Y%m%d-%H%M%S")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"output: {out}", flush=True)
    try:
        install(work)
    except subprocess.CalledProcessError as e:
        print(f"install failed: {e}")
        return None
    return out


def drive(cmd: list[str], log: Path, timeout: float) -> int:
    """Run the browser driver `cmd` with its output in `log`; its exit code (124: timed
    out)."""
    with open(log, "w") as dlog:
        try:
            return subprocess.run(cmd, stdout=dlog, stderr=subprocess.STDOUT,
                                  timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return 124


def install(work: Path) -> None:
    """Copy the offline OHIF recipe to `work` and run its install.sh, the first time only."""
    if (
        (work / "www" / "index.html").is_file()
        and (work / "driver/node_modules/playwright-core").is_dir()
        and Path("/usr/bin/chromium").exists()
    ):
        return
    recipe = Path(os.environ.get("OHIF_RECIPE", REPO.parent / "shared" / "tools" / "ohif"))
    print(f"installing the OHIF recipe from {recipe} into {work}", flush=True)
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-rn", f"{recipe}/.", f"{work}/"], check=True)
    subprocess.run(["chmod", "-R", "u+w", str(work)], check=True)
    env = dict(os.environ)
    if shutil.which("chromium"):
        env["SKIP_APT"] = "1"
    subprocess.run(["bash", str(work / "install.sh")], check=True, env=env)


def norm(path: str) -> str:
    names = {"studies": "{study}", "series": "{series}", "instances": "{instance}"}
    p = re.sub(
        r"/(studies|series|instances)/" + UID, lambda m: f"/{m.group(1)}/{names[m.group(1)]}", path
    )
    return re.sub(r"/frames/[0-9,]+", "/frames/{n}", p)


def norm_query(q: str) -> str:
    return re.sub(UID, "{uid}", q)


def report(scenario: str, out: Path) -> tuple[bool, list[str]]:
    """Print the requests OHIF made in one scenario; return (ok, problems)."""
    recs = [json.loads(line) for line in open(out / f"requests-{scenario}.jsonl") if line.strip()]
    res = json.load(open(out / f"google-{scenario}.json"))
    shapes: dict = collections.OrderedDict()
    for r in recs:
        key = (r["method"], r["host"].split(".")[0], norm(r["path"]))
        shapes.setdefault(key, collections.Counter())[r.get("status") or r.get("error")] += 1
    print(
        f"  requests OHIF made to the Google hosts, all answered by our server: {len(recs)} "
        f'({len(shapes)} shapes; "preflights" are answered by Playwright, not listed)'
    )
    with open(out / f"ohif-requests-{scenario}.txt", "w") as f:
        for (m, host, p), st in shapes.items():
            line = f"{sum(st.values()):3d}x {m} {host}: {p} -> {dict(st)}"
            print("    " + line)
            f.write(line + "\n")
    queries = collections.Counter(
        (r["method"], norm(r["path"]) + norm_query(r["query"])) for r in recs if r["query"]
    )
    print("  query strings:")
    for (m, pq), n in queries.items():
        print(f"    {n:3d}x {m} {pq}")
    problems = []
    for label, method, host, pattern in NEEDED.get(scenario, []) + NEEDED_DICOMWEB:
        rx = re.compile(
            pattern.replace("{study}", UID)
            .replace("{series}", UID)
            .replace("{instance}", UID)
            .replace("{n}", "[0-9,]+")
        )
        hits = [
            r
            for r in recs
            if r["method"] == method and r["host"].startswith(host) and rx.match(r["path"])
        ]
        good = [r for r in hits if r.get("status") and 200 <= r["status"] < 300]
        if not good:
            problems.append(
                f"no 2xx answer for {label} ({method} {host} {pattern}): "
                f"{[(r['path'], r.get('status')) for r in hits][:3] or 'never requested'}"
            )
    expected = EXPECTED_FAILURES.get(scenario, [])
    for r in recs:
        status = r.get("status")
        if status and status < 400:
            continue
        why = next(
            (
                e[4]
                for e in expected
                if r["method"] == e[0]
                and r["host"].startswith(e[1])
                and re.match(e[2], r["path"])
                and status == e[3]
            ),
            None,
        )
        line = (
            f"{r['method']} {r['url']} (Accept: {r.get('accept')}) -> {status or r.get('error')} "
            f"{r.get('contentType') or ''} {(r.get('body') or '').strip()[:400]!r}"
        )
        if why:
            print(f"  expected failure ({why}):\n    {line}")
        else:
            print(f"  FAILED REQUEST: {line}")
            problems.append(f"failed request: {line}")
    auth = collections.Counter(
        "Bearer"
        if (r.get("authorization") or "").startswith("Bearer ")
        else "none"
        if not r.get("authorization")
        else "other"
        for r in recs
    )
    print(f"  Authorization headers: {dict(auth)}")
    if res.get("blocked"):
        print(f"  other external requests (aborted): {res['blocked'][:10]}")
    errs = [c for c in res.get("console", []) if c.startswith(("[error]", "[pageerror]"))]
    print(f"  console errors: {len(errs)}")
    for c in errs[:10]:
        print("    " + c[:300])
    for s in res["steps"]:
        extra = {
            k: s[k]
            for k in ("ok", "picked", "listed", "want", "dialog", "error", "text", "url")
            if k in s
        }
        print(f"  step {s['name']}: {json.dumps(extra)[:400]}")
        for k in ("screenshot", "viewport"):
            if s.get(k):
                print(f"      {s[k]}")
    if not res.get("ok"):
        problems.append("browser steps failed (see the steps above)")
    return not problems, problems


def start_server(out, data, port, extra_args=()):
    """`python -m pacs serve` on 127.0.0.1:port with one worker, logging to out/pacs-server.log.

    -> (Popen, open log file); the caller waits for /healthz, stops it and closes the log."""
    server_log = open(out / "pacs-server.log", "w")
    cmd = [sys.executable, "-m", "pacs", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--data", str(data), "--workers", "1", *extra_args]
    server = subprocess.Popen(cmd, cwd=REPO, stdout=server_log, stderr=subprocess.STDOUT)
    return server, server_log


def write_server_requests(out):
    """Deduplicate the server's access log (out/pacs-server.log) into out/server-requests.txt.

    -> Counter of (method, normalised path, status)."""
    seen = collections.Counter()
    for line in open(out / "pacs-server.log"):
        m = re.search(r'"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d+)', line)
        if m:
            seen[(m.group(1), norm(m.group(2).split("?")[0]), m.group(3))] += 1
    with open(out / "server-requests.txt", "w") as f:
        for (m, p, s), n in seen.items():
            f.write(f"{n:4d}x {m} {p} {s}\n")
    return seen


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--scenarios", nargs="+", default=["picker", "preconfigured"], choices=list(ROOTS)
    )
    ap.add_argument(
        "--out", type=Path, default=None, help="screenshots and logs (default shots/google-<time>)"
    )
    ap.add_argument(
        "--work",
        type=Path,
        default=Path(os.environ.get("OHIF_WORK", "/tmp/ohif")),
        help="installed copy of the OHIF recipe (default $OHIF_WORK or /tmp/ohif)",
    )
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument(
        "--token",
        default="fake-bearer-token-for-our-server",
        help="Bearer token the preconfigured scenario passes as ?token=",
    )
    ap.add_argument("--keep-data", action="store_true", help="keep the temporary data directory")
    a = ap.parse_args()
    out = prepare(a.out, "google", a.work)
    if out is None:
        return 2

    data = Path(tempfile.mkdtemp(prefix="pacs-google-check-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server, server_log = start_server(out, data, port)
    viewer = None
    results: dict[str, tuple[bool, list[str]]] = {}
    try:
        if not wait_http(f"{base}/healthz", 60, server):
            print(f"server did not start, see {out / 'pacs-server.log'}")
            return 2
        print(f"server: {base} (data {data})", flush=True)
        # 2. dataset, full store, CT series
        loc = f"{base}/v1/projects/{PROJECT}/locations/{LOCATION}"
        for method, url, body in [
            ("POST", f"{loc}/datasets?datasetId={DATASET}", {}),
            (
                "POST",
                f"{loc}/datasets/{DATASET}/dicomStores?dicomStoreId={STORE}",
                {"labels": {"pacs-profile": "full"}},
            ),
        ]:
            status, text = call(method, url, body)
            print(f"{method} {url[len(base) :]} -> {status} {text[:160]}", flush=True)
            if status >= 300:
                return 2
        py = sys.executable
        if subprocess.run(
            [py, "-c", "import pydicom, numpy, requests"], capture_output=True
        ).returncode:
            py = str(a.work / "venv" / "bin" / "python")
        stow = f"{base}/v1/{STORE_NAME}/dicomWeb/studies"
        mk = subprocess.run(
            [
                py,
                str(a.work / "make_ct.py"),
                "--out",
                str(out / "ct"),
                "--slices",
                str(a.slices),
                "--size",
                str(a.size),
                "--stow",
                stow,
            ],
            capture_output=True,
            text=True,
        )
        print(mk.stdout.strip(), mk.stderr.strip()[-500:], flush=True)
        if mk.returncode:
            return 2
        study = (out / "ct" / "study_uid.txt").read_text().strip()
        shutil.rmtree(out / "ct", ignore_errors=True)  # the DICOM files are not needed any more
        # Playwright answers the CORS preflights of routed requests itself, so probe the ones a
        # browser talking to the server directly would send with a Bearer token.
        probe_problems = []
        for path in (
            "/v1/projects",
            f"/v1/projects/{PROJECT}/locations",
            f"/v1/{STORE_NAME}/dicomWeb/studies",
        ):
            good, line = preflight(base + path, "http://127.0.0.1:28080")
            print(f"preflight probe: {'ok' if good else 'FAIL'} {line}", flush=True)
            if not good:
                probe_problems.append(f"CORS preflight: {line}")
        if probe_problems:
            results["preflight-probe"] = (False, probe_problems)
        # 3. one browser run per scenario
        for scenario in a.scenarios:
            cfg = out / f"app-config.{scenario}.js"
            cfg.write_text(
                app_config(
                    "OHIF's Google Cloud Healthcare data source",
                    ROOTS[scenario],
                    "Google Cloud Healthcare (our server)",
                    "GCP",
                    GOOGLE_CONFIGURATION,
                )
            )
            vport = free_port()
            viewer = serve_viewer(a.work, cfg, vport, out, scenario)
            if viewer is None:
                return 2
            print(f"=== scenario {scenario} (data source root {ROOTS[scenario]}) ===", flush=True)
            cmd = [
                "node",
                str(HERE / "google_drive.js"),
                "--viewer",
                f"http://127.0.0.1:{vport}",
                "--server",
                base,
                "--out",
                str(out),
                "--scenario",
                scenario,
                "--study",
                study,
                "--playwright",
                str(a.work / "driver" / "node_modules" / "playwright-core"),
                "--project",
                PROJECT,
                "--location",
                LOCATION,
                "--dataset",
                DATASET,
                "--store",
                STORE,
            ]
            if scenario == "preconfigured":
                cmd += ["--token", a.token]
            rc = drive(cmd, out / f"drive-{scenario}.log", 600)
            stop(viewer)
            viewer = None
            if not (out / f"google-{scenario}.json").exists():
                print(f"  driver exited {rc} without a result; see {out}/drive-{scenario}.log")
                results[scenario] = (False, [f"driver exited {rc}"])
                continue
            results[scenario] = report(scenario, out)
    finally:
        stop(viewer)
        stop(server)
        server_log.close()
        if not a.keep_data:
            shutil.rmtree(data, ignore_errors=True)
    write_server_requests(out)
    print(f"=== summary === (server access log, deduplicated: {out / 'server-requests.txt'})")
    ok = bool(results) and all(r[0] for r in results.values())
    for scenario, (good, problems) in results.items():
        print(f"{scenario}: {'OK' if good else 'FAIL'}")
        for p in problems:
            print(f"  - {p}")
    print(f"screenshots and logs: {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
