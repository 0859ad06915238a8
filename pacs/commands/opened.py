"""The archive of a data directory as the commands open it: with the store they work on
(`--store`, or the default store), closed when they are done."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from pacs.service.archive import Archive, open_archive
from pacs.service.stores import StoreContext
from pacs.settings import Settings


@asynccontextmanager
async def opened(data: Path, store: str | None = None
                 ) -> AsyncIterator[tuple[Archive, StoreContext]]:
    """The archive in `data` and its store `store` (None: the default store)."""
    settings = Settings(data_dir=data)
    archive = await open_archive(replace(settings, default_store=store or
                                         settings.default_store))
    try:
        yield archive, await archive.stores.get(archive.settings.default_store)
    finally:
        await archive.close()
