"""`pacs serve`: run the archive with uvicorn, one worker process per core by default.

With several workers this process only supervises them, so it never imports what only
workers need (pydicom, numpy, the codecs: some 50 MB of every process that does)."""

import argparse
import asyncio
import atexit
import errno
import importlib
import ipaddress
import logging.config
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
from pacs.config import PRECEDENCE, Config, ConfigError, add_arguments, resolve
from pacs.cores import usable_cores
from pacs.logs import log_config
from pacs.names import StoreName
from pacs.settings import SETTINGS_VARIABLE, Settings
from pacs.telemetry import MULTIPROCESS_VARIABLE
from storage.backends import Placement, open_index
from storage.index.migrations import unknown_applied


def _store(value: str) -> str:
    try:
        return str(StoreName.parse(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _where(parser: argparse.ArgumentParser, after: bool = False) -> argparse.ArgumentParser:
    """--data, --index and --blobs: where the archive a command works on lives, as pacs serve
    takes them (their PACS_* variables are the defaults). With `after`, for a subcommand's
    own options (`pacs stores list --data DIR`): absent unless given."""
    for flag, default, text in (
            ("--data", os.environ.get("PACS_DATA", "pacs-data"),
             "data directory (default pacs-data; $PACS_DATA)"),
            ("--index", os.environ.get("PACS_INDEX", ""),
             "postgresql://… (default: SQLite in the data directory; $PACS_INDEX)"),
            ("--blobs", os.environ.get("PACS_BLOBS", ""),
             "s3://BUCKET/PREFIX (default: files in the data directory; $PACS_BLOBS)")):
        parser.add_argument(flag, type=Path if flag == "--data" else str,
                            default=argparse.SUPPRESS if after else default,
                            metavar="DIR" if flag == "--data" else "URL", help=text)
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pacs", description="A DICOMweb archive server.")
    parser.add_argument("--version", action="version", version=f"pacs {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="serve DICOMweb over HTTP",
        description="Serve the archive. Each option below may also come from its PACS_* "
                    "environment variable or a key of the --config TOML file; precedence: "
                    f"{PRECEDENCE}.")
    add_arguments(serve)
    load = commands.add_parser(
        "import", help="store files, folders and zip files into the archive",
        description="Store DICOM files into the data directory through the same checks as "
                    "STOW; instances already stored with the same bytes are skipped, so an "
                    "interrupted import can be run again. Exit code 0: nothing failed; 1: "
                    "some files failed (each is listed with its reason).")
    load.add_argument("paths", type=Path, nargs="+", metavar="PATH",
                      help="a DICOM file, a folder (walked recursively) or a zip file")
    _where(load)
    load.add_argument("--store", type=_store, default=None,
                      help="the store to import into (default: the default store)")
    load.add_argument("--jobs", type=int, default=usable_cores(),
                      help="files stored at once (default: one per core)")
    load.add_argument("--url", default="",
                      help="send to this DICOMweb root by STOW-RS instead (another pacs, "
                           "Orthanc, a Google store's .../dicomWeb), skipping instances it "
                           "already lists")
    load.add_argument("--token", default=None,
                      help="with --url: a bearer token (e.g. $(gcloud auth print-access-token))")
    load.add_argument("--quiet", action="store_true", help="no progress bar")
    export = commands.add_parser(
        "export", help="write studies as DICOM Part 10 files to a folder or a zip file",
        description="Copy stored instances, byte for byte as they were stored, to DEST: a "
                    "folder tree STUDY/SERIES/INSTANCE.dcm, or a zip file of that tree when "
                    "DEST ends in .zip. Exit code 0: everything written; 1: something failed.")
    export.add_argument("studies", nargs="*", metavar="STUDY",
                        help="Study Instance UIDs to export (or --all)")
    export.add_argument("--all", action="store_true", help="export every study of the store")
    export.add_argument("dest", type=Path, metavar="DEST",
                        help="a folder (created if missing) or a file ending in .zip")
    _where(export)
    export.add_argument("--store", type=_store, default=None,
                        help="the store to export from (default: the default store)")
    export.add_argument("--quiet", action="store_true", help="no progress bar")
    copy = commands.add_parser(
        "copy", help="copy an archive into another (e.g. into PostgreSQL and S3)",
        description="Copy every dataset, store (profile, labels), IAM policy and instance of "
                    "the archive FROM into the one at --data, --index and --blobs, each "
                    "instance checked against its recorded SHA-256 and stored with the same "
                    "checks as STOW. What the target holds already is skipped, so an "
                    "interrupted copy can be run again. Exit code 0: nothing failed; 1: some "
                    "instances failed (each is listed with its reason).")
    copy.add_argument("source", type=Path, metavar="FROM",
                      help="the data directory to copy (its SQLite index and blobs)")
    copy.add_argument("--from-index", default="", metavar="URL",
                      help="the index to copy instead of FROM's (postgresql://…)")
    copy.add_argument("--from-blobs", default="", metavar="URL",
                      help="the blobs to copy instead of FROM's (s3://BUCKET/PREFIX)")
    _where(copy)
    copy.add_argument("--jobs", type=int, default=usable_cores() * 2,
                      help="instances copied at once (default: two per core)")
    copy.add_argument("--quiet", action="store_true", help="no progress bar")
    stores = commands.add_parser("stores", help="list, create or delete stores",
                                 description="Manage the stores of a data directory (the "
                                             "server need not be running).")
    actions = stores.add_subparsers(dest="action", required=True)
    _where(stores)
    data_after = _where(argparse.ArgumentParser(add_help=False), after=True)
    actions.add_parser("list", parents=[data_after],
                       help="every store with its profile, instances and bytes")
    create = actions.add_parser("create", parents=[data_after],
                                help="create a store (and its dataset)")
    create.add_argument("name", type=_store, metavar="projects/P/locations/L/datasets/D/"
                        "dicomStores/S")
    create.add_argument("--profile", choices=("full", "google"), default="full",
                        help="full: the whole standard; google: the Cloud Healthcare API's "
                             "behaviour and limits (default full)")
    delete = actions.add_parser("delete", parents=[data_after],
                                help="delete a store and everything in it")
    delete.add_argument("name", type=_store, metavar="projects/P/locations/L/datasets/D/"
                        "dicomStores/S")
    verify = commands.add_parser(
        "verify", help="check that the index and the blobs agree (and repair them)",
        description="Check every instance's blob (size and SHA-256), blobs no index row "
                    "points at, empty studies and series and staging leftovers. Exit code "
                    "0: healthy (or all repaired); 1: problems remain.")
    verify.add_argument("--repair", action="store_true",
                        help="index again unreferenced blobs that are valid instances; "
                             "remove rows of missing or corrupt blobs, what cannot be "
                             "stored, empty studies and series, and staging leftovers")
    _where(verify)
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


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_archive(where: Placement) -> None:
    """SystemExit with one line for a data directory or an index this version cannot use."""
    data = where.data_dir
    if data.exists() and not data.is_dir():
        raise SystemExit(f"pacs: --data {data} is a file; give a directory (it is created "
                         "if missing)")
    try:  # the embedded index's file is read as it is, so that checking creates nothing
        newer = asyncio.run(_newer_migrations(where)) if where.index_url \
            else unknown_applied(where.sqlite_path)
    except (OSError, ValueError):
        return  # cannot be reached or opened here: opening it says why, in its place
    if newer:
        what = "the index" if where.index_url else str(data)
        raise SystemExit(f"pacs: {what} was written by a newer version of pacs (it has "
                         f"migrations {', '.join(newer)}); run that version or a later one")


async def _newer_migrations(where: Placement) -> list[str]:
    index = open_index(where)
    try:
        return await index.newer_migrations()
    finally:
        await index.close()


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
    if args.command == "serve":
        try:
            config = resolve(args, os.environ)
            settings = config.settings()
        except ConfigError as exc:
            raise SystemExit(f"pacs: {exc}") from exc
        if args.print_config:
            print(config.to_toml())
            return
        serve(config, settings)
        return
    if not (args.command == "import" and args.url):
        _check_archive(Placement(args.data, args.index, args.blobs))
    run = {"verify": "pacs.commands.verify", "stores": "pacs.commands.stores",
           "import": "pacs.commands.import_files", "export": "pacs.commands.export_files",
           "copy": "pacs.commands.copy_archive"}
    sys.exit(importlib.import_module(run[args.command]).run(args))


def serve(config: Config, settings: Settings) -> None:
    """Run uvicorn: in this process with one worker, else as the supervisor of several; and
    the DICOM gateway in a process of its own when it has a port."""
    host, port = config["host"], config["port"]
    _check_archive(settings.placement)
    if not settings.authentication and not _loopback(host):
        if not config["allow_unauthenticated"]:
            raise SystemExit(f"pacs: refusing to serve {host} without authentication: "
                             "give --auth-tokens or --oidc-issuer, or --allow-unauthenticated "
                             "to let anyone who can reach the port read, store and delete "
                             "everything")
    _check_port(host, port)
    if settings.dimse_port is not None:
        if not settings.dimse_peers and not _loopback(host):
            raise SystemExit(f"pacs: refusing to serve DICOM on {host} to any calling AE "
                             "title: give --dimse-peer TITLE@HOST:PORT for each peer that may "
                             "associate")
        _check_port(host, settings.dimse_port)
    logs = log_config(config["log_level"], config["log_format"])
    logging.config.dictConfig(logs)  # as uvicorn will: what is said before it, said alike
    log = logging.getLogger("pacs")
    if not settings.authentication and not _loopback(host):
        log.warning("serving %s without authentication: anyone who can reach the port can "
                    "read, store and delete everything", host)
    if config["log_format"] == "json":
        log.info("effective configuration", extra={"config": {
            name: {"value": value, "source": source}
            for name, (value, source) in config.shown().items()}})
    else:
        print(config.to_toml(), flush=True)  # a TOML file as it stands, to copy
    base = f"http://{host}:{port}"
    log.info("data in %s", settings.data_dir.resolve())
    log.info("DICOMweb (default store) at %s/dicomweb", base)
    for name in (settings.default_store, *settings.stores):
        log.info("Cloud Healthcare API path %s/v1/%s/dicomWeb", base, name)
    if settings.viewer_dir is not None:
        log.info("OHIF viewer at %s/viewer/", base)
    if settings.dimse_port is None:
        _run_uvicorn(config, settings, logs)
        return
    from pacs.dimse import gateway  # pynetdicom and pydicom: loaded in its process only

    processes = gateway.start(settings, host, _loopback(host) and not settings.dimse_peers,
                              logs, gateway.processes(settings, config["workers"]))
    try:
        _run_uvicorn(config, settings, logs)
    finally:
        gateway.stop(processes)


def _run_uvicorn(config: Config, settings: Settings, logs: dict[str, Any]) -> None:
    """Serve HTTP until stopped: in this process with one worker, else as the supervisor
    of several."""
    host, port, workers = config["host"], config["port"], config["workers"]
    # X-Forwarded-* trust is decided by pacs.http.resource_urls, not by uvicorn, which would
    # otherwise rewrite the scheme and client address before we see who the peer is.
    if workers <= 1:
        from pacs.app import create_app  # this process serves

        uvicorn.run(create_app(settings), host=host, port=port, log_config=logs,
                    log_level=config["log_level"], proxy_headers=False)
        return
    # each worker opens the archive itself: migrations and stores are safe to race
    os.environ[SETTINGS_VARIABLE] = replace(settings, server_workers=workers).to_env()
    # the workers' Prometheus counts, in files any worker's /metrics reads (pacs/telemetry.py)
    metrics_dir = tempfile.mkdtemp(prefix="pacs-metrics-")
    atexit.register(shutil.rmtree, metrics_dir, True)
    os.environ[MULTIPROCESS_VARIABLE] = metrics_dir
    uvicorn.run("pacs.app:app_from_env", factory=True, workers=workers, host=host,
                port=port, log_config=logs, log_level=config["log_level"],
                proxy_headers=False)


if __name__ == "__main__":
    main()
