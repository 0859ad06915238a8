"""`pacs stores list|create|delete`: the stores of an archive's data directory, managed
through the same service functions as the Cloud Healthcare API's management methods."""

import argparse
import asyncio

from pacs.service.archive import Archive, open_archive
from pacs.service.errors import ArchiveError
from pacs.service.management import delete_store
from pacs.service.metrics import store_sizes
from pacs.settings import Settings


def run(args: argparse.Namespace) -> int:
    """Carry out `args.action`; the exit code (an error the archive names is one line)."""
    try:
        asyncio.run(_run(args))
    except ArchiveError as exc:
        raise SystemExit(f"pacs: {exc.message}") from exc
    return 0


async def _run(args: argparse.Namespace) -> None:
    archive = await open_archive(Settings(data_dir=args.data))
    try:
        await ACTIONS[args.action](archive, args)
    finally:
        await archive.close()


async def _list(archive: Archive, args: argparse.Namespace) -> None:
    profiles = {}
    for dataset in await archive.index.dataset_names():
        for row in await archive.index.list_stores(dataset, "", -1):
            profiles[row.name] = row.profile
    for name, instances, size in await store_sizes(archive):
        print(f"{name}\t{profiles[name]}\t{instances} instances\t{size} bytes")


async def _create(archive: Archive, args: argparse.Namespace) -> None:
    if await archive.index.get_store(args.name) is not None:
        raise SystemExit(f"pacs: store {args.name} exists already")
    await archive.stores.ensure(args.name, args.profile)
    print(f"created {args.name} ({args.profile})")


async def _delete(archive: Archive, args: argparse.Namespace) -> None:
    await delete_store(archive, args.name)
    print(f"deleted {args.name}; its blobs are removed after the grace period")


ACTIONS = {"list": _list, "create": _create, "delete": _delete}
