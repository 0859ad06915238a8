"""`pacs import PATH...`: store files, folders and zip files, several at once, with a
progress bar; into an archive's data directory through the service layer, or with `--url`
into any DICOMweb server (Orthanc, the Cloud Healthcare API, another pacs) by STOW-RS.
Failures are listed with their reasons, then a summary. Exit code 0 when nothing failed,
1 otherwise."""

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from pacs.commands.opened import opened
from pacs.commands.upload import uploader
from pacs.dicom.pydicom_setup import configure_pydicom
from pacs.service.import_files import Result, Source, import_one, sources

Importer = Callable[[Source], Awaitable[tuple[Result, str]]]


def run(args: argparse.Namespace) -> int:
    """Import `args.paths` into `args.url`, or else the data directory `args.data`; the
    exit code."""
    try:
        found = list(sources(args.paths))
    except FileNotFoundError as exc:
        raise SystemExit(f"pacs: {exc.args[0]}: no such file or folder") from exc
    configure_pydicom()
    failures, counts, seconds = asyncio.run(_import(args, found))
    for name, why in failures:  # one line each, never wrapped: for grep and for people
        print(f"failed: {name}: {why}", file=sys.stderr)
    total_bytes = sum(s.size for s in found)
    print(f"{len(found)} files: {counts[Result.STORED]} stored, "
          f"{counts[Result.ALREADY_STORED]} already stored, {counts[Result.FAILED]} failed "
          f"in {seconds:.1f} s ({len(found) / max(seconds, 1e-9):.0f} files/s, "
          f"{total_bytes / 1e6 / max(seconds, 1e-9):.1f} MB/s)")
    return 1 if counts[Result.FAILED] else 0


@asynccontextmanager
async def _into_archive(args: argparse.Namespace) -> AsyncIterator[Importer]:
    async with opened(args.data, args.store) as (archive, store):
        yield lambda source: import_one(archive, store, source)


async def _import(args: argparse.Namespace, found: list[Source]
                  ) -> tuple[list[tuple[str, str]], Counter[Result], float]:
    failures: list[tuple[str, str]] = []
    counts: Counter[Result] = Counter()
    start = time.perf_counter()
    pending = iter(found)
    columns = (TextColumn("importing"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[done]}/{task.fields[files]} files, "
                          "{task.fields[rate]:.0f} files/s,"),
               TransferSpeedColumn(), TimeRemainingColumn())
    destination = uploader(args.url, args.token) if args.url else _into_archive(args)
    async with destination as one:
        with Progress(*columns, console=Console(stderr=True), disable=args.quiet) as progress:
            task = progress.add_task("import", total=sum(s.size for s in found), done=0,
                                     files=len(found), rate=0.0)

            async def worker() -> None:
                for source in pending:
                    result, why = await one(source)
                    counts[result] += 1
                    if result is Result.FAILED:
                        failures.append((source.name, why))
                    done = sum(counts.values())
                    progress.update(task, advance=source.size, done=done,
                                    rate=done / max(time.perf_counter() - start, 1e-9))
            await asyncio.gather(*(worker() for _ in range(max(args.jobs, 1))))
    return failures, counts, time.perf_counter() - start
