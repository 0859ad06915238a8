"""`pacs import PATH...`: store files, folders and zip files, several at once, with a
progress bar; into an archive's data directory through the service layer, or with `--url`
into any DICOMweb server (Orthanc, the Cloud Healthcare API, another pacs) by STOW-RS.
Failures are listed with their reasons, then a summary. Exit code 0 when nothing failed,
1 otherwise."""

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from pacs.commands.opened import opened, placement
from pacs.commands.progress import Tally
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
    tally = Tally("importing", [result.value for result in Result], len(found),
                  sum(s.size for s in found), quiet=args.quiet)
    asyncio.run(_import(args, found, tally))
    return tally.finish()


@asynccontextmanager
async def _into_archive(args: argparse.Namespace) -> AsyncIterator[Importer]:
    async with opened(placement(args), args.store) as (archive, store):
        yield lambda source: import_one(archive, store, source)


async def _import(args: argparse.Namespace, found: list[Source], tally: Tally) -> None:
    pending = iter(found)
    destination = uploader(args.url, args.token) if args.url else _into_archive(args)
    async with destination as one:
        with tally:

            async def worker() -> None:
                for source in pending:
                    result, why = await one(source)
                    tally.add(result.value, source.size, source.name, why)
            await asyncio.gather(*(worker() for _ in range(max(args.jobs, 1))))
