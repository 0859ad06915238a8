"""`pacs verify [--repair]`: the archive's health as a report on stdout and an exit code
(0 healthy, or everything found was repaired; 1 otherwise)."""

import argparse
import asyncio
import json
from dataclasses import asdict

from pacs.commands.opened import opened, placement
from pacs.dicom.pydicom_setup import configure_pydicom
from pacs.service.verify import VerifyReport, verify
from storage.backends import Placement


def run(args: argparse.Namespace) -> int:
    """Verify the data directory `args.data`; the exit code."""
    where = placement(args, existing=True)
    configure_pydicom()
    report = asyncio.run(_verify(args, where))
    if args.json:
        print(json.dumps({**asdict(report), "healthy": report.healthy}, indent=2))
    else:
        _print(report)
    return 0 if report.healthy else 1


async def _verify(args: argparse.Namespace, where: Placement) -> VerifyReport:
    async with opened(where, args.store) as (archive, store):
        return await verify(archive, store, repair=args.repair, grace=args.grace,
                            checksums=not args.no_checksums)


def _print(report: VerifyReport) -> None:
    for finding in report.findings:
        done = f" -> {finding.repair}" if finding.repair else ""
        print(f"{finding.kind}: {finding.subject}: {finding.detail}{done}")
    print(f"checked {report.instances} instances and {report.blobs_checked} blobs; "
          f"{len(report.findings)} problems, {sum(bool(f.repair) for f in report.findings)} "
          f"repaired; {report.queued_removals} blobs of deleted instances await removal")
    print("healthy" if report.healthy else "NOT healthy: run `pacs verify --repair`")
