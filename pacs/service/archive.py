"""The archive every door opens once: settings, the index, the blob store, the store
directory and the pixel workers; no other state lives in the server."""

import asyncio
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from pacs.cores import usable_cores
from pacs.pixels.engine import PixelEngine
from pacs.service.iam import Policies
from pacs.service.profiles import FULL
from pacs.service.stores import StoreDirectory
from pacs.settings import Settings
from storage.backends import open_blob_store, open_index
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
    read_only: bool = False  # the data directory is on a read-only volume: reads only
    # set when this process starts a job, so that its runner claims it at once
    jobs_waiting: asyncio.Event = field(default_factory=asyncio.Event, compare=False)

    @property
    def read_bytes(self) -> int:
        """Blob bytes per read when streaming: as configured, else the blob store's own."""
        return self.settings.read_chunk_bytes or self.blobs.read_size

    async def close(self) -> None:
        await self.index.close()


async def open_archive(settings: Settings) -> Archive:
    """Open the index and blob store, apply migrations and create the configured stores. A
    data directory on a read-only volume (a mounted backup, a full disk remounted) is opened
    for reading: every write is refused with an OSError (EROFS), which each door answers
    clearly; its stores must already exist."""
    read_only = _on_read_only_volume(settings.data_dir)
    placement = replace(settings.placement, read_only=read_only)
    index = open_index(placement)
    try:
        await index.migrate()
        blobs = open_blob_store(placement)
        stores = StoreDirectory(index, settings.store_cache_seconds)
        for name in (settings.default_store, *settings.stores):
            await (stores.get(name) if read_only else stores.ensure(name, FULL.name))
        policies = Policies(index)

        def changed() -> None:  # by any replica: read stores and policies again from now on
            stores.forget_all()
            policies.forget_all()
        await index.on_resources_changed(changed)
    except BaseException:
        await index.close()
        raise
    workers = settings.pixel_workers or usable_cores()
    return Archive(settings, index, blobs, stores, policies,
                   PixelEngine(blobs, workers,
                               settings.pixel_cache_bytes // max(settings.server_workers, 1),
                               settings.max_pixel_memory_bytes // max(settings.server_workers, 1),
                               settings.max_rendered_pixels),
                   read_only)


def _on_read_only_volume(data_dir: Path) -> bool:
    return data_dir.is_dir() and bool(os.statvfs(data_dir).f_flag & os.ST_RDONLY)
