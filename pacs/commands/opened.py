"""The archive of a data directory as the commands open it: with the store they work on
(`--store`, or the default store), closed when they are done. A store is looked up, never
created: a mistyped name is one line, not a new empty store."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pacs.service.archive import Archive, open_archive
from pacs.service.errors import NotFound
from pacs.service.stores import StoreContext
from pacs.settings import Settings


@asynccontextmanager
async def opened(data: Path, store: str | None = None
                 ) -> AsyncIterator[tuple[Archive, StoreContext]]:
    """The archive in `data` and its store `store` (None: the default store); SystemExit
    with one line if there is no such store."""
    archive = await open_archive(Settings(data_dir=data))
    try:
        try:
            context = await archive.stores.get(store or archive.settings.default_store)
        except NotFound as exc:
            raise SystemExit(f"pacs: {exc.message} in {data} (create it with pacs stores "
                             "create)") from exc
        yield archive, context
    finally:
        await archive.close()
