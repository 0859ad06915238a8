"""Store instances (PS3.4 Annex B, PS3.18 10.5): the one path from received bytes into the
archive, for STOW-RS, STOW from metadata, `pacs import` and C-STORE alike.

The invariant that keeps data safe lives here: the blob is durable before the index row
points at it, and a row the index refuses (a duplicate, a conflict) removes its blob again.
A bad instance fails alone with a Failure Reason and never touches what is stored.
"""

from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path
from typing import BinaryIO

import anyio

from pacs.dicom.ingest import IngestError, part10_head, read_instance
from pacs.service.archive import Archive
from pacs.service.errors import InvalidArgument
from pacs.service.failures import (
    CANNOT_UNDERSTAND,
    DATA_SET_DOES_NOT_MATCH,
    OUT_OF_RESOURCES,
    PROCESSING_FAILURE,
    FailureReason,
)
from pacs.service.same_instance import same_data_set
from pacs.service.staging import stage_all
from pacs.service.stores import StoreContext
from pacs.telemetry import INSTANCES
from storage.protocols import StagedBlob
from storage.rows import AddOutcome, InstanceRecord

COPY_CHUNK_BYTES = 1024 * 1024


@dataclass
class StoreOutcome:
    """What became of one instance: the UIDs its response item names, or why it failed."""

    sop_class_uid: str = ""
    sop_uid: str = ""
    study_uid: str = ""
    series_uid: str = ""
    reason: FailureReason | None = None
    detail: str = ""
    duplicate: bool = False  # stored already with the same bytes: success, nothing changed

    def fail(self, reason: FailureReason, detail: str) -> None:
        self.reason, self.detail = reason, detail

    @property
    def stored(self) -> bool:
        return self.reason is None


STORAGE_CLASSES = ("STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE")  # Google's (spec 5.1)


@dataclass(frozen=True)
class StoreOptions:
    """How a request stores: into `study` only (when given), replacing an instance stored
    under the same SOP Instance UID with other content (the upsert) or not, and the storage
    class its blobs are recorded with."""

    study: str | None = None
    replace: bool = False
    storage_class: str = "STANDARD"


def storage_class(value: str | None) -> str:
    """A storage class a client asked for (STANDARD when it asked none); InvalidArgument
    naming the classes otherwise."""
    if value is None or not value.strip():
        return STORAGE_CLASSES[0]
    if value.strip().upper() not in STORAGE_CLASSES:
        raise InvalidArgument(f"storage class {value[:40]!r} is not one of "
                              f"{', '.join(STORAGE_CLASSES)}")
    return value.strip().upper()


async def store_staged(archive: Archive, store: StoreContext, staged: StagedBlob,
                       outcome: StoreOutcome, options: StoreOptions = StoreOptions()) -> None:
    """Store the complete Part 10 blob `staged` in `store` as `options` say, recording the
    result in `outcome`. `staged` is consumed: committed, or discarded."""
    committed = await commit_staged(archive, store, staged, outcome, options)
    if committed is not None:
        await index_committed(archive, store, committed, outcome, options)


def count(outcome: StoreOutcome) -> None:
    """Count the fate of an instance a client asked to keep, once it is settled (the STOW
    transaction counts each of its instances, whatever failed it)."""
    INSTANCES.labels("duplicate" if outcome.duplicate else
                     "stored" if outcome.stored else "failed").inc()


@dataclass(frozen=True)
class Committed:
    """An instance read and made durable, not yet in the index."""

    record: InstanceRecord
    name: str
    staged: StagedBlob


async def commit_staged(archive: Archive, store: StoreContext, staged: StagedBlob,
                        outcome: StoreOutcome, options: StoreOptions = StoreOptions()
                        ) -> Committed | None:
    """The first half of `store_staged`: parse and make durable; None (the reason in
    `outcome`) if the instance is refused. Whoever gets a Committed must index it."""
    try:
        return Committed(*await anyio.to_thread.run_sync(
            _read_and_commit, archive, store, staged, outcome, options))
    except IngestError as exc:
        outcome.sop_class_uid = outcome.sop_class_uid or exc.sop_class_uid
        outcome.sop_uid = outcome.sop_uid or exc.sop_instance_uid
        outcome.fail(CANNOT_UNDERSTAND, str(exc))
    except _Refused:
        pass
    except OSError as exc:
        out_of_resources(outcome, exc)
    return None


def out_of_resources(outcome: StoreOutcome, exc: OSError) -> None:
    """Fail the instance because the archive could not keep it (disk full, a staging or
    index file that cannot be written): Refused: Out of Resources, PS3.4 B.2.3."""
    outcome.fail(OUT_OF_RESOURCES, "the archive could not keep the instance: "
                 f"{exc.strerror or exc}; nothing of it was stored")


class _Refused(Exception):
    """The instance was read but is refused; the reason is in its outcome."""


def _read_and_commit(archive: Archive, store: StoreContext, staged: StagedBlob,
                     outcome: StoreOutcome, options: StoreOptions
                     ) -> tuple[InstanceRecord, str, StagedBlob]:
    """Make the blob a Part 10 file if it lacks the preamble, parse its header, check the
    study and make it durable (one worker-thread hop); what is staged is discarded on any
    failure. Returns the record, the blob's name and what was committed."""
    try:
        staged = _as_part10(archive, staged)
        with staged.open() as fp:
            record = read_instance(fp, store.profile.bulk_data)
        outcome.sop_class_uid, outcome.sop_uid = record.sop_class_uid, record.sop_uid
        outcome.study_uid, outcome.series_uid = record.study_uid, record.series_uid
        if options.study is not None and record.study_uid != options.study:
            outcome.fail(DATA_SET_DOES_NOT_MATCH, f"StudyInstanceUID {record.study_uid} "
                         f"differs from the study in the request URL, {options.study}")
            raise _Refused
        record = replace(record, storage_class=options.storage_class)
        return record, archive.blobs.commit(staged), staged
    except BaseException:
        staged.discard()
        raise


def _as_part10(archive: Archive, staged: StagedBlob) -> StagedBlob:
    """`staged`, or a new staged blob holding it as a Part 10 file when it starts with its
    File Meta group rather than the preamble (the original is then discarded)."""
    with staged.open() as fp:
        found = part10_head(fp)
        if found is None:
            return staged
        head, dataset_start = found
        fp.seek(dataset_start)
        rebuilt = stage_all(archive.blobs, chain([head], _chunks(fp)))
    staged.discard()
    return rebuilt


async def store_file(archive: Archive, store: StoreContext, path: Path,
                     options: StoreOptions = StoreOptions()) -> StoreOutcome:
    """Store the Part 10 file at `path` (as `pacs import` does), copying it into staging."""
    outcome = StoreOutcome()
    staged = await anyio.to_thread.run_sync(_stage_file, archive, path)
    await store_staged(archive, store, staged, outcome, options)
    return outcome


def _stage_file(archive: Archive, path: Path) -> StagedBlob:
    with path.open("rb") as source:
        return stage_all(archive.blobs, _chunks(source))


def _chunks(source: BinaryIO) -> Iterator[bytes]:
    """The rest of `source`, a copy-sized chunk at a time."""
    return iter(lambda: source.read(COPY_CHUNK_BYTES), b"")


async def index_committed(archive: Archive, store: StoreContext, committed: Committed,
                          outcome: StoreOutcome, options: StoreOptions = StoreOptions()) -> None:
    """The second half of `store_staged`: the index row for the durable blob; a refused row
    removes the blob again (a replaced row's old blob is queued for removal by the index).
    An index that cannot be written (disk full) fails the instance as out of resources.
    Shielded from cancellation: once the row may be written, the blob's fate must follow it
    (a cancelled wait must not remove a blob its row names, tests/test_archive_core.py)."""
    record, name, staged = committed.record, committed.name, committed.staged
    with anyio.CancelScope(shield=True):
        try:
            if options.replace:
                added, _ = await archive.index.replace_instance(
                    store.id, record, name, staged.size, staged.sha256)
            else:
                added = await archive.index.add_instance(store.id, record, name, staged.size,
                                                         staged.sha256)
        except Exception as exc:  # the index refused or failed the write: no row names it
            # (a cancellation of the task itself, which the shield does not cover, leaves
            # the blob: its row may still commit; if not, the sweep removes an orphan)
            await anyio.to_thread.run_sync(archive.blobs.delete, name)
            if not isinstance(exc, OSError):
                raise
            out_of_resources(outcome, exc)
            return
        if added is AddOutcome.CONFLICT and store.profile.duplicate_data_set and \
                await same_data_set(archive, store, record, name):
            added = AddOutcome.DUPLICATE  # sent again through another door
        if added is not AddOutcome.STORED:
            await anyio.to_thread.run_sync(archive.blobs.delete, name)
    outcome.duplicate = added is AddOutcome.DUPLICATE
    if added is AddOutcome.CONFLICT:
        outcome.fail(PROCESSING_FAILURE, f"an instance with SOPInstanceUID {record.sop_uid} "
                     "already exists with different content; the stored instance is unchanged")
    elif added is AddOutcome.SERIES_CONFLICT:
        outcome.fail(PROCESSING_FAILURE, f"SeriesInstanceUID {record.series_uid} already "
                     f"belongs to another study than {record.study_uid}")
