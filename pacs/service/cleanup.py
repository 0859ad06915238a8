"""Cleanup: the blobs of deleted and replaced instances once their removal is due, staged
blobs of requests that never finished, and committed blobs no index row points at (a crash
between commit and index). Safe with many writers, in many processes: a deleted instance's
blob outlives its rows by `removal_grace_seconds`, so a retrieve that found it first reads it
to the end; an unreferenced blob is removed only after a grace period far longer than any
commit takes to reach the index, and never while this process is still receiving it."""

import asyncio
import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import anyio

from pacs.service.archive import Archive
from storage.protocols import BlobStore

log = logging.getLogger("pacs")
BATCH = 1000  # blob names looked up in the index at once


@dataclass(frozen=True)
class CleanupReport:
    """How many blobs of deleted instances, staged and unreferenced blobs one sweep
    removed."""

    deleted: int
    staged: int
    unreferenced: int


async def sweep(archive: Archive) -> CleanupReport:
    """One pass over the queued removals, staging and the stored blobs."""
    settings = archive.settings
    blobs = archive.blobs
    deleted = await remove_due(archive, settings.removal_grace_seconds)
    staged = await anyio.to_thread.run_sync(blobs.discard_staging,
                                            settings.staging_grace_seconds)
    names = blobs.names(settings.orphan_grace_seconds)
    unreferenced = 0
    while batch := await anyio.to_thread.run_sync(lambda: list(islice(names, BATCH))):
        referenced = await archive.index.referenced(batch)
        for name in batch:
            if name not in referenced:
                await anyio.to_thread.run_sync(blobs.delete, name)
                unreferenced += 1
    report = CleanupReport(deleted, staged, unreferenced)
    if staged or unreferenced:
        log.warning("cleanup removed %d unfinished staged blobs and %d blobs no index row "
                    "referenced", staged, unreferenced)
    return report


async def remove_due(archive: Archive, older_than: float) -> int:
    """Remove the blobs whose removal was queued more than `older_than` seconds ago; how
    many went. A blob that cannot be removed stays queued for the next sweep."""
    removed = 0
    while names := await archive.index.due_removals(older_than, BATCH):
        done = await anyio.to_thread.run_sync(_delete_each, archive.blobs, names)
        await archive.index.removals_done(done)
        removed += len(done)
        if len(done) < len(names):
            break
    return removed


def _delete_each(blobs: BlobStore, names: list[str]) -> list[str]:
    """Delete `names` in order until one cannot be; those deleted."""
    for count, name in enumerate(names):
        try:
            blobs.delete(name)
        except OSError as exc:
            log.error("blob %s of a deleted instance could not be removed (%s); it stays "
                      "queued", name, exc)
            return names[:count]
    return names


async def sweep_periodically(archive: Archive) -> None:
    """Sweep `cleanup_delay_seconds` after start, so that starting stays fast and unhurried
    whatever the archive's size (what a sweep removes is hours old anyway), then every
    `cleanup_interval_seconds`, until cancelled. Of the processes serving one data
    directory, one sweeps at a time; the others skip that round. A failed sweep is logged
    and tried again next time."""
    settings = archive.settings
    await asyncio.sleep(settings.cleanup_delay_seconds)
    while True:
        try:
            with _exclusive(settings.data_dir / "cleanup.lock") as ours:
                if ours:
                    await sweep(archive)
        except Exception:
            log.exception("cleanup failed; it will run again")
        await asyncio.sleep(settings.cleanup_interval_seconds)


@contextmanager
def _exclusive(path: Path) -> Iterator[bool]:
    """Whether this process holds the lock on `path` (never waiting for it) while inside."""
    with path.open("a") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)
