"""`pacs verify`: check that the index and the blob store agree, and optionally repair them.

Checked: every instance row's blob exists with the recorded size and SHA-256; blobs no row
points at (older than a grace period, so a commit on its way to the index is not one);
studies and series without instances; staged blobs left by interrupted uploads. Queued
removals of deleted instances' blobs are reported, not faults.

Repair: an unreferenced blob that is a valid instance is stored again through the one
store path (same validation and conflict rules) and then removed, so it is indexed under a
fresh name; one that is not is removed. A row whose blob is missing or corrupt is removed
(its instance must be sent again: the report names it). Studies and series are recounted,
empty ones and staging leftovers removed. Safe beside a running server: nothing younger
than the grace is touched.
"""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice

import anyio

from pacs.service.archive import Archive
from pacs.service.staging import stage_all
from pacs.service.store_instances import StoreOutcome, store_staged
from pacs.service.stores import StoreContext
from storage.protocols import BlobStore
from storage.rows import StoredInstance

PAGE = 1000  # rows or blob names checked at once
READ_BYTES = 4 * 1024 * 1024  # blob bytes hashed per read


@dataclass(frozen=True)
class Finding:
    """One disagreement: its kind, what it concerns and what repair did about it (empty
    when nothing was done)."""

    kind: str
    subject: str
    detail: str
    repair: str = ""


@dataclass
class VerifyReport:
    """What one run checked and found."""

    instances: int = 0
    blobs_checked: int = 0
    queued_removals: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """Whether nothing is wrong, or everything wrong was repaired."""
        return all(f.repair for f in self.findings)


async def verify(archive: Archive, store: StoreContext, *, repair: bool, grace: float,
                 checksums: bool = True) -> VerifyReport:
    """Check the whole archive (every store); with `repair`, fix what can be fixed and
    remove what cannot. Unreferenced blobs that are valid instances go to `store`."""
    report = VerifyReport()
    await _check_rows(archive, report, repair, checksums)
    await _check_unreferenced(archive, store, report, repair, grace)
    studies, series = await archive.index.parents_astray(repair)
    if studies or series:
        report.findings.append(Finding(
            "astray", f"{studies} studies and {series} series",
            "hold no instance, or counts that are not their instances'",
            "recounted; the empty ones removed" if repair else ""))
    blobs = archive.blobs
    staged = await anyio.to_thread.run_sync(
        blobs.discard_staging if repair else blobs.count_staging, grace)
    if staged:
        report.findings.append(Finding("staging", f"{staged} staged blobs",
                                       "left by interrupted uploads",
                                       "removed" if repair else ""))
    report.queued_removals = await archive.index.queued_removals()
    return report


async def _check_rows(archive: Archive, report: VerifyReport, repair: bool,
                      checksums: bool) -> None:
    after = 0
    while rows := await archive.index.instances_after(after, PAGE):
        after = rows[-1].pk
        report.instances += len(rows)
        for row in rows:
            problem = await anyio.to_thread.run_sync(_blob_problem, archive.blobs, row,
                                                     checksums)
            if problem is None:
                continue
            done = ""
            if repair:
                await archive.index.delete(row.store_id, row.study_uid, row.series_uid,
                                           row.sop_uid)
                done = "row removed: send the instance again"
            report.findings.append(Finding(
                problem[0], f"instance {row.sop_uid} (study {row.study_uid}, blob "
                f"{row.blob_name})", problem[1], done))


def _blob_problem(blobs: BlobStore, row: StoredInstance,
                  checksums: bool) -> tuple[str, str] | None:
    """What is wrong with the row's blob (its kind and detail), or None."""
    try:
        size = blobs.size(row.blob_name)
    except FileNotFoundError:
        return "missing", "its blob is not in the blob store"
    if size != row.blob_size:
        return "corrupt", f"its blob holds {size} bytes, the index records {row.blob_size}"
    if checksums:
        digest = hashlib.sha256()
        for chunk in _chunks(blobs, row.blob_name, size):
            digest.update(chunk)
        if digest.hexdigest() != row.sha256:
            return "corrupt", "its blob's SHA-256 differs from the one recorded at ingest"
    return None


def _chunks(blobs: BlobStore, name: str, size: int) -> Iterator[bytes]:
    for offset in range(0, size, READ_BYTES):
        yield blobs.read(name, offset, min(READ_BYTES, size - offset))


async def _check_unreferenced(archive: Archive, store: StoreContext, report: VerifyReport,
                              repair: bool, grace: float) -> None:
    names = archive.blobs.names(grace)
    while batch := await anyio.to_thread.run_sync(lambda: list(islice(names, PAGE))):
        report.blobs_checked += len(batch)
        referenced = await archive.index.referenced(batch)
        for name in batch:
            if name not in referenced:
                done = await _reindex(archive, store, name) if repair else ""
                report.findings.append(Finding("unreferenced", f"blob {name}",
                                               "no index row points at it", done))


async def _reindex(archive: Archive, store: StoreContext, name: str) -> str:
    """Store the blob's bytes again as a new instance, then remove the blob; what was done."""
    size = await anyio.to_thread.run_sync(archive.blobs.size, name)
    staged = await anyio.to_thread.run_sync(
        stage_all, archive.blobs, _chunks(archive.blobs, name, size))
    outcome = StoreOutcome()
    await store_staged(archive, store, staged, outcome)
    await anyio.to_thread.run_sync(archive.blobs.delete, name)
    if outcome.stored:  # stored again, or already there under another blob (a duplicate)
        return (f"instance {outcome.sop_uid} of study {outcome.study_uid} is in the index "
                "(stored again if it was missing); the blob was removed")
    return f"removed: it cannot be stored ({outcome.detail})"
