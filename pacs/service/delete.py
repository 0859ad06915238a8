"""Delete a study, series or instance (as the Cloud Healthcare API, Orthanc and Microsoft
offer it): the index rows go, in one transaction that also queues the removal of their
blobs; the cleanup removes the blobs after `removal_grace_seconds`, so a retrieve that found
them before the delete is never cut short."""

from pacs.service.archive import Archive
from pacs.service.errors import NotFound
from pacs.service.stores import StoreContext
from pacs.service.targets import Target


async def delete(archive: Archive, store: StoreContext, target: Target) -> None:
    """Remove everything under `target`; NotFound if nothing is there."""
    if await archive.index.delete(store.id, target.study, target.series,
                                  target.instance) is None:
        raise NotFound(f"{target.describe()} not found")
