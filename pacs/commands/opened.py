"""The archive of a data directory as the commands open it: with the store they work on
(`--store`, or the default store), closed when they are done. A store is looked up, never
created: a mistyped name is one line, not a new empty store."""

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pacs.service.archive import Archive, open_archive
from pacs.service.errors import NotFound
from pacs.service.stores import StoreContext
from pacs.settings import Settings
from storage.backends import BLOB_STORES, INDEXES, Placement, chosen


def placement(args: argparse.Namespace, existing: bool = False) -> Placement:
    """Where the command's archive lives (`--data`, `--index`, `--blobs`); SystemExit with
    one line for a URL no implementation serves or, with `existing`, for an embedded archive
    that is not there."""
    where = Placement(args.data, args.index, args.blobs)
    try:
        chosen(INDEXES, where.index_url, "index")
        chosen(BLOB_STORES, where.blobs_url, "blob store")
    except ValueError as exc:
        raise SystemExit(f"pacs: {exc}") from exc
    if existing and not where.index_url and not where.sqlite_path.is_file():
        raise SystemExit(f"pacs: {args.data} holds no archive (no {where.sqlite_path.name})")
    return where


@asynccontextmanager
async def opened(where: Placement, store: str | None = None
                 ) -> AsyncIterator[tuple[Archive, StoreContext]]:
    """The archive at `where` and its store `store` (None: the default store); SystemExit
    with one line if there is no such store."""
    archive = await open_archive(Settings(data_dir=where.data_dir, index_url=where.index_url,
                                          blobs_url=where.blobs_url))
    try:
        try:
            context = await archive.stores.get(store or archive.settings.default_store)
        except NotFound as exc:
            raise SystemExit(f"pacs: {exc.message} in {where.data_dir} (create it with pacs "
                             "stores create)") from exc
        yield archive, context
    finally:
        await archive.close()
