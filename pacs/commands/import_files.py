"""`pacs import PATH...`: store files, folders and zip files into an archive's data
directory through the service layer, several at once, with a progress bar; failures are
listed with their reasons, then a summary. Exit code 0 when nothing failed, 1 otherwise."""

import argparse
import asyncio
import sys
import time
from collections import Counter
from dataclasses import replace

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from pacs.dicom.pydicom_setup import configure_pydicom
from pacs.service.archive import open_archive
from pacs.service.import_files import Result, Source, import_one, sources
from pacs.settings import Settings


def run(args: argparse.Namespace) -> int:
    """Import `args.paths` into the data directory `args.data`; the exit code."""
    try:
        found = list(sources(args.paths))
    except FileNotFoundError as exc:
        raise SystemExit(f"pacs: {exc.args[0]}: no such file or folder") from exc
    configure_pydicom()
    console = Console(stderr=True)
    failures, counts, seconds = asyncio.run(_import(args, found, console))
    for name, why in failures:  # one line each, never wrapped: for grep and for people
        print(f"failed: {name}: {why}", file=sys.stderr)
    total_bytes = sum(s.size for s in found)
    print(f"{len(found)} files: {counts[Result.STORED]} stored, "
          f"{counts[Result.ALREADY_STORED]} already stored, {counts[Result.FAILED]} failed "
          f"in {seconds:.1f} s ({len(found) / max(seconds, 1e-9):.0f} files/s, "
          f"{total_bytes / 1e6 / max(seconds, 1e-9):.1f} MB/s)")
    return 1 if counts[Result.FAILED] else 0


async def _import(args: argparse.Namespace, found: list[Source], console: Console
                  ) -> tuple[list[tuple[str, str]], Counter[Result], float]:
    settings = Settings(data_dir=args.data)
    archive = await open_archive(replace(settings, default_store=args.store or
                                         settings.default_store))
    failures: list[tuple[str, str]] = []
    counts: Counter[Result] = Counter()
    start = time.perf_counter()
    try:
        store = await archive.stores.get(archive.settings.default_store)
        pending = iter(found)
        columns = (TextColumn("importing"), BarColumn(), TaskProgressColumn(),
                   TextColumn("{task.fields[done]}/{task.fields[files]} files, "
                              "{task.fields[rate]:.0f} files/s,"),
                   TransferSpeedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, disable=args.quiet) as progress:
            task = progress.add_task("import", total=sum(s.size for s in found), done=0,
                                     files=len(found), rate=0.0)

            async def worker() -> None:
                for source in pending:
                    result, why = await import_one(archive, store, source)
                    counts[result] += 1
                    if result is Result.FAILED:
                        failures.append((source.name, why))
                    done = sum(counts.values())
                    progress.update(task, advance=source.size, done=done,
                                    rate=done / max(time.perf_counter() - start, 1e-9))
            await asyncio.gather(*(worker() for _ in range(max(args.jobs, 1))))
    finally:
        await archive.close()
    return failures, counts, time.perf_counter() - start
