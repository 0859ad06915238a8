"""`pacs copy FROM`: copy the archive in the data directory FROM (or at --from-index and
--from-blobs) into the one at --data, --index and --blobs, e.g. an embedded archive into
PostgreSQL and S3; with a progress bar, each failure with its reason, and a summary. Exit
code 0 when nothing failed, 1 otherwise. Run it again to finish an interrupted copy."""

import argparse
import asyncio

from pacs.commands.opened import placement
from pacs.commands.progress import Tally
from pacs.dicom.pydicom_setup import configure_pydicom
from pacs.service.archive import Archive, open_archive
from pacs.service.copy_archive import Copied, copy_instances, copy_resources, totals
from pacs.service.import_files import Result
from pacs.settings import Settings
from storage.backends import Placement


def run(args: argparse.Namespace) -> int:
    """Copy the source archive into the target; the exit code."""
    source = placement(argparse.Namespace(data=args.source, index=args.from_index,
                                          blobs=args.from_blobs), existing=True)
    target = placement(args)
    if source == target:
        raise SystemExit("pacs: the archive to copy into is the one copied from")
    configure_pydicom()
    return asyncio.run(_copy(args, source, target))


async def _copy(args: argparse.Namespace, source_at: Placement, target_at: Placement) -> int:
    source = await _open(source_at)
    try:
        target = await _open(target_at)
        try:
            stores = await copy_resources(source, target)
            files, size = await totals(source)
            tally = Tally(f"copying {stores} stores", [r.value for r in Result], files, size,
                          quiet=args.quiet)

            def done(copied: Copied) -> None:
                tally.add(copied.result.value, copied.size, copied.name, copied.why)
            with tally:
                await copy_instances(source, target, max(args.jobs, 1), done)
            return tally.finish()
        finally:
            await target.close()
    finally:
        await source.close()


async def _open(where: Placement) -> Archive:
    return await open_archive(Settings(data_dir=where.data_dir, index_url=where.index_url,
                                       blobs_url=where.blobs_url))
