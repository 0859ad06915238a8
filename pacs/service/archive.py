"""The archive every door opens once: settings, the index, the blob store, the store
directory and the pixel workers; no other state lives in the server."""

import os
from dataclasses import dataclass

from pacs.pixels.engine import PixelEngine
from pacs.service.iam import Policies
from pacs.service.profiles import FULL
from pacs.service.stores import StoreDirectory
from pacs.settings import Settings
from storage.filesystem_blobs import FilesystemBlobStore
from storage.index.sqlite_index import SqliteIndex
from storage.protocols import BlobStore, InstanceIndex


@dataclass(frozen=True)
class Archive:
    """What every operation works with."""

    settings: Settings
    index: InstanceIndex
    blobs: BlobStore
    stores: StoreDirectory
    policies: Policies
    pixels: PixelEngine

    async def close(self) -> None:
        await self.index.close()


async def open_archive(settings: Settings) -> Archive:
    """Open the index and blob store, apply migrations and create the configured stores."""
    index = SqliteIndex(settings.index_path, readers=settings.index_readers,
                        read_time_limit=settings.query_time_limit_seconds)
    await index.migrate()
    blobs = FilesystemBlobStore(settings.blob_dir)
    stores = StoreDirectory(index, settings.store_cache_seconds)
    for name in (settings.default_store, *settings.stores):
        await stores.ensure(name, FULL.name)
    workers = settings.pixel_workers or os.cpu_count() or 1
    return Archive(settings, index, blobs, stores, Policies(index),
                   PixelEngine(blobs, workers,
                               settings.pixel_cache_bytes // max(settings.server_workers, 1)))
