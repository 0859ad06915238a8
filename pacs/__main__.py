"""`pacs serve`: run the archive with uvicorn, one worker process per core by default."""

import argparse
import asyncio
import os
import sys
from pathlib import Path

import uvicorn

from pacs.app import create_app
from pacs.names import StoreName
from pacs.service.archive import open_archive
from pacs.settings import SETTINGS_VARIABLE, Settings


def _store(value: str) -> str:
    try:
        return str(StoreName.parse(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pacs", description="A DICOMweb archive server.")
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
    serve.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="worker processes (default: one per core)")
    return parser.parse_args(argv)


async def _prepare(settings: Settings) -> None:
    """Migrate and create the stores once, before any worker serves."""
    archive = await open_archive(settings)
    await archive.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = Settings(data_dir=args.data, stores=tuple(args.store), gcs_dir=args.gcs_root)
    base = f"http://{args.host}:{args.port}"
    print(f"pacs: data in {args.data.resolve()}", flush=True)
    print(f"pacs: DICOMweb (default store) at {base}/dicomweb", flush=True)
    for name in (settings.default_store, *settings.stores):
        print(f"pacs: Cloud Healthcare API path {base}/v1/{name}/dicomWeb", flush=True)
    if args.workers <= 1:
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
        return
    asyncio.run(_prepare(settings))
    os.environ[SETTINGS_VARIABLE] = settings.to_env()
    uvicorn.run("pacs.app:app_from_env", factory=True, workers=args.workers, host=args.host,
                port=args.port, log_level="info")


if __name__ == "__main__":
    main()
