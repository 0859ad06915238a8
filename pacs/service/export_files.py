"""Export studies of a store (`pacs export`): which instances, where each goes in the
export, and each one's bytes exactly as stored, which are its DICOM File (PS3.10 7). The
bytes are checked against the size and SHA-256 recorded at ingest, so that a damaged blob
is reported, never passed off as its instance."""

import hashlib
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pacs.service.archive import Archive
from pacs.service.errors import DataLoss
from pacs.service.stores import StoreContext
from storage.protocols import BlobStore
from storage.query import Level, Query

PAGE = 1000  # studies listed at once
READ_BYTES = 1024 * 1024  # blob bytes per read


@dataclass(frozen=True)
class Selection:
    """The studies to export, those asked for that the store does not hold, and how many
    instances and bytes the first hold."""

    studies: list[str]
    missing: list[str]
    instances: int
    size: int


@dataclass(frozen=True)
class ExportItem:
    """One instance to export: its UIDs, its blob, and the size and SHA-256 recorded when it
    was stored."""

    study_uid: str
    series_uid: str
    sop_uid: str
    blob_name: str
    size: int
    sha256: str

    @property
    def path(self) -> str:
        """Its place in an export: STUDY/SERIES/SOP.dcm (UIDs are digits and dots, checked
        at ingest, so safe as file names)."""
        return f"{self.study_uid}/{self.series_uid}/{self.sop_uid}.dcm"


async def select_studies(archive: Archive, store: StoreContext,
                         uids: Sequence[str] | None) -> Selection:
    """The studies `uids` names (each once, in their order), or every study of the store
    when None."""
    if uids is None:
        studies: dict[str, None] = {}
        while True:
            page = await archive.index.search(store.id, Query(Level.STUDY, limit=PAGE,
                                                             offset=len(studies)))
            studies.update(dict.fromkeys(row.study_uid for row in page.rows))
            if not page.more:
                break
        held = await archive.index.metrics(store.id)
        return Selection(list(studies), [], held.instances, held.blob_bytes)
    found: list[str] = []
    missing: list[str] = []
    instances = size = 0
    for uid in dict.fromkeys(uids):
        held = await archive.index.metrics(store.id, uid)
        (found if held.instances else missing).append(uid)
        instances += held.instances
        size += held.blob_bytes
    return Selection(found, missing, instances, size)


async def study_items(archive: Archive, store: StoreContext, study: str) -> list[ExportItem]:
    """The instances of `study` in series and instance number order (none if it was
    deleted meanwhile)."""
    items = []
    for found in await archive.index.locate(store.id, study):
        sha256 = await archive.index.stored_sha256(store.id, found.sop_uid)
        if sha256 is not None:  # None: deleted since it was located
            items.append(ExportItem(found.study_uid, found.series_uid, found.sop_uid,
                                    found.blob_name, found.blob_size, sha256))
    return items


def chunks(blobs: BlobStore, item: ExportItem) -> Iterator[bytes]:
    """The instance's bytes as stored, read as they are asked for (blocking: run it in a
    worker thread); DataLoss before the first if its blob is gone or not the size
    recorded."""
    try:
        size = blobs.size(item.blob_name)
    except FileNotFoundError:
        raise DataLoss(f"its blob {item.blob_name} is not in the blob store") from None
    if size != item.size:
        raise DataLoss(f"its blob {item.blob_name} holds {size} bytes, the index records "
                       f"{item.size}")
    for offset in range(0, size, READ_BYTES):
        yield blobs.read(item.blob_name, offset, min(READ_BYTES, size - offset))


def verified_chunks(blobs: BlobStore, item: ExportItem) -> Iterator[bytes]:
    """As `chunks`, and DataLoss after the last one if they are not the bytes whose SHA-256
    was recorded at ingest."""
    digest = hashlib.sha256()
    for data in chunks(blobs, item):
        digest.update(data)
        yield data
    if digest.hexdigest() != item.sha256:
        raise DataLoss(f"its blob {item.blob_name}'s SHA-256 differs from the one recorded "
                       "at ingest")


def check(blobs: BlobStore, item: ExportItem) -> None:
    """DataLoss unless the instance's blob holds the bytes recorded at ingest (reads it
    through once; blocking)."""
    for _ in verified_chunks(blobs, item):
        pass


def write_file(blobs: BlobStore, root: Path, item: ExportItem) -> bool:
    """Write the instance at `root / item.path` unless the file there holds its bytes
    already: under a temporary name, on disk before it is renamed into place (blocking);
    whether it wrote it."""
    path = root / item.path
    if _holds(path, item):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        with temp.open("xb") as file:
            for data in verified_chunks(blobs, item):
                file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return True


def _holds(path: Path, item: ExportItem) -> bool:
    """Whether `path` is a file of the instance's size and SHA-256."""
    if not path.is_file() or path.stat().st_size != item.size:
        return False
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest() == item.sha256
