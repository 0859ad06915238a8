"""Whether an instance stored again is the one already stored: the same data set, whatever
the File Meta Information around it says (PS3.10 7.1: the group describes the file, the
toolkit that wrote it and the AE title that sent it, not the instance). So a study a
modality sends again by C-STORE is a duplicate of what STOW-RS or `pacs import` stored, not
a conflict, though each door's file meta differs."""

from io import BytesIO

import anyio

from pacs.dicom.ingest import IngestError, data_set_start
from pacs.service.archive import Archive
from pacs.service.stores import StoreContext
from storage.protocols import BlobStore
from storage.rows import InstanceRecord

HEAD_BYTES = 64 * 1024  # enough for any File Meta group a toolkit writes
CHUNK_BYTES = 1024 * 1024


async def same_data_set(archive: Archive, store: StoreContext, record: InstanceRecord,
                        blob: str) -> bool:
    """Whether the instance stored under `record`'s UIDs holds the same data set as the
    Part 10 blob `blob`, compared a chunk at a time."""
    found = await archive.index.locate(store.id, record.study_uid, record.series_uid,
                                       record.sop_uid)
    return bool(found) and await anyio.to_thread.run_sync(
        _same, archive.blobs, found[0].blob_name, blob)


def _same(blobs: BlobStore, first: str, second: str) -> bool:
    try:
        starts = [data_set_start(BytesIO(blobs.read(name, 0, HEAD_BYTES)))
                  for name in (first, second)]
        sizes = [blobs.size(name) for name in (first, second)]
    except (IngestError, FileNotFoundError):
        return False
    if max(starts) >= HEAD_BYTES or sizes[0] - starts[0] != sizes[1] - starts[1]:
        return False
    for offset in range(0, sizes[0] - starts[0], CHUNK_BYTES):
        if blobs.read(first, starts[0] + offset, CHUNK_BYTES) != \
                blobs.read(second, starts[1] + offset, CHUNK_BYTES):
            return False
    return True
