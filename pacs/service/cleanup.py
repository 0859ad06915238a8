"""Cleanup of what interrupted work leaves behind: staged blobs of requests that never
finished, and committed blobs no index row points at (a crash between commit and index, or
between an index delete and the blob's). Safe with many writers, in many processes: a blob is
removed only after a grace period far longer than any commit takes to reach the index, and
never while this process is still receiving it."""

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

log = logging.getLogger("pacs")
BATCH = 1000  # blob names looked up in the index at once


@dataclass(frozen=True)
class CleanupReport:
    """How many staged and unreferenced blobs one sweep removed."""

    staged: int
    unreferenced: int


async def sweep(archive: Archive) -> CleanupReport:
    """One pass over staging and the stored blobs."""
    settings = archive.settings
    blobs = archive.blobs
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
    report = CleanupReport(staged, unreferenced)
    if staged or unreferenced:
        log.warning("cleanup removed %d unfinished staged blobs and %d blobs no index row "
                    "referenced", staged, unreferenced)
    return report


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
