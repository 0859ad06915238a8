"""Retrieve (PS3.4 C.6 retrieve, PS3.18 10.4): where the instances of a study, series or
instance are, and their metadata as DICOM JSON (PS3.18 F.2), precomputed at ingest."""

from pacs.service.archive import Archive
from pacs.service.errors import NotFound
from pacs.service.links import Links
from pacs.service.stores import StoreContext
from pacs.service.targets import Target
from storage.rows import InstanceLocation


async def locate(archive: Archive, store: StoreContext, target: Target
                 ) -> list[InstanceLocation]:
    """The instances under `target`, in series and instance number order; NotFound if none."""
    found = await archive.index.locate(store.id, target.study, target.series, target.instance)
    if not found:
        raise NotFound(f"{target.describe()} not found")
    return found


async def metadata(archive: Archive, store: StoreContext, target: Target, links: Links
                   ) -> bytes:
    """The DICOM JSON array of the instances under `target`, BulkDataURIs under `links`."""
    rows = await archive.index.metadata(store.id, target.study, target.series, target.instance)
    if not rows:
        raise NotFound(f"{target.describe()} not found")
    return b"[" + b",".join(links.with_bulk_data_uris(row.metadata, row.study_uid,
                                                      row.series_uid, row.sop_uid)
                            for row in rows) + b"]"
