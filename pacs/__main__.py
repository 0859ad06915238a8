"""`pacs serve`: run the archive with uvicorn, one worker process per core by default.

With several workers this process only supervises them, so it never imports what only
workers need (pydicom, numpy, the codecs: some 50 MB of every process that does)."""

import argparse
import atexit
import errno
import ipaddress
import json
import os
import shutil
import socket
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvicorn

from pacs import __version__
from pacs.logs import FORMATS, LEVELS, log_config
from pacs.names import StoreName
from pacs.service.iam import ROLES
from pacs.settings import SETTINGS_VARIABLE, Settings
from pacs.telemetry import MULTIPROCESS_VARIABLE
from storage.index.migrations import unknown_applied


def _store(value: str) -> str:
    try:
        return str(StoreName.parse(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pacs", description="A DICOMweb archive server.")
    parser.add_argument("--version", action="version", version=f"pacs {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve DICOMweb over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--data", type=Path, default=Path("pacs-data"),
                       help="data directory (index and blobs; created if missing)")
    serve.add_argument("--store", type=_store, action="append", default=[],
                       help="create a further store projects/P/locations/L/datasets/D/"
                            "dicomStores/S (repeatable)")
    serve.add_argument("--gcs-root", type=Path, default=None,
                       help="directory that gs://BUCKET/PATH URIs of dicomStores.import and "
                            "export map to, as DIR/BUCKET/PATH (default: DATA/gcs)")
    serve.add_argument("--auth-tokens", type=Path, default=None,
                       help="JSON file mapping each bearer token to an identity in Google's "
                            'member syntax, e.g. {"s3cr3t": "user:alice@example.com"}; turns '
                            "authentication on")
    serve.add_argument("--admin", action="append", default=[], metavar="IDENTITY",
                       help="an identity holding every permission (repeatable)")
    serve.add_argument("--allow-unauthenticated", action="store_true",
                       help="serve a non-loopback address without authentication")
    serve.add_argument("--audit-log", type=Path, metavar="FILE",
                       help="append a JSON line per request: who did what to which resource "
                            "with what result")
    serve.add_argument("--oidc-issuer", default="",
                       help="accept OIDC JWTs from this issuer (its `iss`), e.g. a Keycloak realm")
    serve.add_argument("--oidc-audience", default="", help="the `aud` OIDC tokens must carry")
    serve.add_argument("--oidc-jwks", default="", metavar="PATH_OR_URL",
                       help="the issuer's signing keys: a JWKS file or URL")
    serve.add_argument("--oidc-identity-claim", default="email",
                       help="the claim naming the caller, as user:<claim> (default email)")
    serve.add_argument("--oidc-roles-claim", default="",
                       help="dotted path to the token's roles, e.g. realm_access.roles")
    serve.add_argument("--oidc-role-map", type=Path, metavar="FILE",
                       help="JSON: token role -> list of {resource, role} Google roles")
    serve.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                       help="an origin browsers may call from, e.g. https://viewer.example "
                            "(repeatable; default * while authentication is off)")
    serve.add_argument("--forwarded-allow-ips", default="127.0.0.1,::1",
                       help="comma-separated proxy addresses whose X-Forwarded-* headers "
                            "are honoured ('*': any; default 127.0.0.1,::1)")
    serve.add_argument("--public-url", default="",
                       help="the base URL clients reach the server at (pins RetrieveURLs)")
    serve.add_argument("--log-level", choices=LEVELS, default="info",
                       help="the least severe messages logged (default info: one line per "
                            "request)")
    serve.add_argument("--log-format", choices=FORMATS, default="text",
                       help="text, or json: one JSON object per line, requests with their "
                            "method, path, status, duration and bytes (default text)")
    serve.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="worker processes (default: one per core)")
    load = commands.add_parser(
        "import", help="store files, folders and zip files into the archive",
        description="Store DICOM files into the data directory through the same checks as "
                    "STOW; instances already stored with the same bytes are skipped, so an "
                    "interrupted import can be run again. Exit code 0: nothing failed; 1: "
                    "some files failed (each is listed with its reason).")
    load.add_argument("paths", type=Path, nargs="+", metavar="PATH",
                      help="a DICOM file, a folder (walked recursively) or a zip file")
    load.add_argument("--data", type=Path, default=Path("pacs-data"),
                      help="data directory (default pacs-data; created if missing)")
    load.add_argument("--store", type=_store, default=None,
                      help="the store to import into (default: the default store)")
    load.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                      help="files stored at once (default: one per core)")
    load.add_argument("--url", default="",
                      help="send to this DICOMweb root by STOW-RS instead (another pacs, "
                           "Orthanc, a Google store's .../dicomWeb), skipping instances it "
                           "already lists")
    load.add_argument("--token", default=None,
                      help="with --url: a bearer token (e.g. $(gcloud auth print-access-token))")
    load.add_argument("--quiet", action="store_true", help="no progress bar")
    stores = commands.add_parser("stores", help="list, create or delete stores",
                                 description="Manage the stores of a data directory (the "
                                             "server need not be running).")
    stores.add_argument("--data", type=Path, default=Path("pacs-data"),
                        help="data directory (default pacs-data)")
    actions = stores.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every store with its profile, instances and bytes")
    create = actions.add_parser("create", help="create a store (and its dataset)")
    create.add_argument("name", type=_store, metavar="projects/P/locations/L/datasets/D/"
                        "dicomStores/S")
    create.add_argument("--profile", choices=("full", "google"), default="full",
                        help="full: the whole standard; google: the Cloud Healthcare API's "
                             "behaviour and limits (default full)")
    delete = actions.add_parser("delete", help="delete a store and everything in it")
    delete.add_argument("name", type=_store, metavar="projects/P/locations/L/datasets/D/"
                        "dicomStores/S")
    verify = commands.add_parser(
        "verify", help="check that the index and the blobs agree (and repair them)",
        description="Check every instance's blob (size and SHA-256), blobs no index row "
                    "points at, empty studies and series and staging leftovers. Exit code "
                    "0: healthy (or all repaired); 1: problems remain.")
    verify.add_argument("--data", type=Path, default=Path("pacs-data"),
                        help="data directory (default pacs-data)")
    verify.add_argument("--repair", action="store_true",
                        help="index again unreferenced blobs that are valid instances; "
                             "remove rows of missing or corrupt blobs, what cannot be "
                             "stored, empty studies and series, and staging leftovers")
    verify.add_argument("--store", type=_store, default=None,
                        help="the store unreferenced instances are indexed into "
                             "(default: the default store)")
    verify.add_argument("--grace", type=float, default=3600.0, metavar="SECONDS",
                        help="leave blobs and staged files younger than this alone (a "
                             "running server may be committing them; default 3600)")
    verify.add_argument("--no-checksums", action="store_true",
                        help="check blob sizes only, not their SHA-256 (fast)")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser.parse_args(argv)


MEMBER_KINDS = ("user:", "serviceAccount:", "group:", "domain:")


def _tokens(path: Path | None) -> tuple[tuple[str, str], ...]:
    """The token file's pairs; SystemExit with one line saying what is wrong."""
    if path is None:
        return ()
    try:
        tokens = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"pacs: cannot read --auth-tokens {path}: {exc}") from exc
    if not isinstance(tokens, dict) or not tokens or not all(
            isinstance(t, str) and t and isinstance(m, str) and m.startswith(MEMBER_KINDS)
            for t, m in tokens.items()):
        raise SystemExit(f"pacs: --auth-tokens {path} must be a JSON object of tokens to "
                         f"identities ({', '.join(MEMBER_KINDS)}…)")
    return tuple(tokens.items())


def _oidc(args: argparse.Namespace) -> dict[str, Any]:
    """The OIDC settings; SystemExit with one line saying what is missing or wrong."""
    if not args.oidc_issuer:
        return {}
    if not args.oidc_audience or not args.oidc_jwks:
        raise SystemExit("pacs: --oidc-issuer needs --oidc-audience and --oidc-jwks")
    role_map: list[tuple[str, str, str]] = []
    if args.oidc_role_map is not None:
        try:
            roles = json.loads(args.oidc_role_map.read_text())
            role_map = [(token_role, grant["resource"], grant["role"])
                        for token_role, grants in roles.items() for grant in grants]
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SystemExit(f"pacs: cannot read --oidc-role-map {args.oidc_role_map}: a JSON "
                             "object of role -> [{resource, role}] expected") from exc
        unknown = {role for _, _, role in role_map} - set(ROLES)
        if unknown:
            raise SystemExit(f"pacs: --oidc-role-map names unknown roles {sorted(unknown)}")
    return {"oidc_issuer": args.oidc_issuer, "oidc_audience": args.oidc_audience,
            "oidc_jwks": args.oidc_jwks, "oidc_identity_claim": args.oidc_identity_claim,
            "oidc_roles_claim": args.oidc_roles_claim, "oidc_role_map": tuple(role_map)}


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_data(data: Path) -> None:
    """SystemExit with one line for a data directory this version cannot use."""
    if data.exists() and not data.is_dir():
        raise SystemExit(f"pacs: --data {data} is a file; give a directory (it is created "
                         "if missing)")
    newer = unknown_applied(Settings(data_dir=data).index_path)
    if newer:
        raise SystemExit(f"pacs: {data} was written by a newer version of pacs (it has "
                         f"migrations {', '.join(newer)}); run that version or a later one")


def _check_port(host: str, port: int) -> None:
    """SystemExit with one line if the address cannot be listened on (uvicorn would say so
    only after opening the archive, among its start-up lines)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            sock.bind(infos[0][4])
            sock.listen(1)  # where a port in use is refused, with SO_REUSEADDR
    except OSError as exc:
        raise SystemExit(f"pacs: cannot listen on {host}:{port}: {exc.strerror or exc}"
                         + (" (another server is using it; choose another with --port)"
                            if exc.errno == errno.EADDRINUSE else "")) from exc


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not (args.command == "import" and args.url):
        _check_data(args.data)
    if args.command == "verify":
        from pacs.commands.verify import run

        sys.exit(run(args))
    if args.command == "stores":
        from pacs.commands.stores import run as run_stores

        sys.exit(run_stores(args))
    if args.command == "import":
        from pacs.commands.import_files import run as run_import

        sys.exit(run_import(args))
    settings = Settings(data_dir=args.data, stores=tuple(args.store), gcs_dir=args.gcs_root,
                        auth_tokens=_tokens(args.auth_tokens), admins=tuple(args.admin),
                        cors_origins=tuple(args.cors_origin) or ("*",),
                        forwarded_allow_ips=tuple(filter(None, (
                            ip.strip() for ip in args.forwarded_allow_ips.split(",")))),
                        public_url=args.public_url, audit_log=args.audit_log, **_oidc(args))
    if not settings.authentication and not _loopback(args.host):
        if not args.allow_unauthenticated:
            raise SystemExit(f"pacs: refusing to serve {args.host} without authentication: "
                             "give --auth-tokens or --oidc-issuer, or --allow-unauthenticated "
                             "to let anyone who can reach the port read, store and delete "
                             "everything")
        print(f"pacs: WARNING: serving {args.host} without authentication: anyone who can "
              "reach the port can read, store and delete everything", flush=True)
    _check_port(args.host, args.port)
    logs = log_config(args.log_level, args.log_format)
    base = f"http://{args.host}:{args.port}"
    print(f"pacs: data in {args.data.resolve()}", flush=True)
    print(f"pacs: DICOMweb (default store) at {base}/dicomweb", flush=True)
    for name in (settings.default_store, *settings.stores):
        print(f"pacs: Cloud Healthcare API path {base}/v1/{name}/dicomWeb", flush=True)
    # X-Forwarded-* trust is decided by pacs.http.resource_urls, not by uvicorn, which would
    # otherwise rewrite the scheme and client address before we see who the peer is.
    if args.workers <= 1:
        from pacs.app import create_app  # this process serves

        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_config=logs,
                    log_level=args.log_level,
                    proxy_headers=False)
        return
    # each worker opens the archive itself: migrations and stores are safe to race
    os.environ[SETTINGS_VARIABLE] = replace(settings, server_workers=args.workers).to_env()
    # the workers' Prometheus counts, in files any worker's /metrics reads (pacs/telemetry.py)
    metrics_dir = tempfile.mkdtemp(prefix="pacs-metrics-")
    atexit.register(shutil.rmtree, metrics_dir, True)
    os.environ[MULTIPROCESS_VARIABLE] = metrics_dir
    uvicorn.run("pacs.app:app_from_env", factory=True, workers=args.workers, host=args.host,
                port=args.port, log_config=logs, log_level=args.log_level,
                proxy_headers=False)


if __name__ == "__main__":
    main()
