"""`pacs stores list|create|delete`: the stores of an archive's data directory, managed
through the same service functions as the Cloud Healthcare API's management methods."""

import argparse
import asyncio

from pacs.commands.opened import opened, placement
from pacs.service.archive import Archive
from pacs.service.errors import ArchiveError
from pacs.service.management import delete_store
from pacs.service.metrics import store_sizes


def run(args: argparse.Namespace) -> int:
    """Carry out `args.action`; the exit code (an error the archive names is one line)."""
    try:
        asyncio.run(_run(args))
    except ArchiveError as exc:
        raise SystemExit(f"pacs: {exc.message}") from exc
    return 0


async def _run(args: argparse.Namespace) -> None:
    async with opened(placement(args)) as (archive, _):
        await ACTIONS[args.action](archive, args)


async def _list(archive: Archive, args: argparse.Namespace) -> None:
    for row, held in await store_sizes(archive):
        print(f"{row.name}\t{row.profile}\t{held.instances} instances\t{held.blob_bytes} bytes")


async def _create(archive: Archive, args: argparse.Namespace) -> None:
    if await archive.index.get_store(args.name) is not None:
        raise SystemExit(f"pacs: store {args.name} exists already")
    await archive.stores.ensure(args.name, args.profile)
    print(f"created {args.name} ({args.profile})")


async def _delete(archive: Archive, args: argparse.Namespace) -> None:
    await delete_store(archive, args.name)
    print(f"deleted {args.name}; its blobs are removed after the grace period")


ACTIONS = {"list": _list, "create": _create, "delete": _delete}
