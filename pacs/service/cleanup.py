"""Cleanup of what interrupted work leaves behind: staged blobs of requests that never
finished, and committed blobs no index row points at (a crash between commit and index, or
between an index delete and the blob's). Safe with many writers, in many processes: a blob is
removed only after a grace period far longer than any commit takes to reach the index, and
never while this process is still receiving it."""

import asyncio
import logging
from dataclasses import dataclass
from itertools import islice

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
    """Sweep now and every `cleanup_interval_seconds` until cancelled; a failed sweep is
    logged and tried again next time."""
    while True:
        try:
            await sweep(archive)
        except Exception:
            log.exception("cleanup failed; it will run again")
        await asyncio.sleep(archive.settings.cleanup_interval_seconds)
