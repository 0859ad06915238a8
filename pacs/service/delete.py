"""Delete a study, series or instance (as the Cloud Healthcare API, Orthanc and Microsoft
offer it): index rows first, in one transaction; then the blobs they pointed at. A blob left
by an interruption between the two is removed later by the cleanup."""

import anyio

from pacs.service.archive import Archive
from pacs.service.errors import NotFound
from pacs.service.stores import StoreContext
from pacs.service.targets import Target


async def delete(archive: Archive, store: StoreContext, target: Target) -> None:
    """Remove everything under `target`; NotFound if nothing is there."""
    blob_names = await archive.index.delete(store.id, target.study, target.series,
                                            target.instance)
    if blob_names is None:
        raise NotFound(f"{target.describe()} not found")
    for name in blob_names:
        await anyio.to_thread.run_sync(archive.blobs.delete, name)
