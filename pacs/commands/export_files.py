"""`pacs export STUDY... DEST` or `pacs export --all DEST`: copy stored instances, byte for
byte as they were stored (their DICOM Files, PS3.10 7), to a folder tree
STUDY/SERIES/SOP.dcm or to a zip file of that tree, with a progress bar; failures are listed
with their reasons, then a summary. Exit code 0 when nothing failed, 1 otherwise.

Nothing is left half-written. A file is written under a temporary name, flushed to disk and
renamed into place; one already there with the same size and SHA-256 is left alone, so an
interrupted export can be run again. A zip is written whole under a temporary name and
renamed at the end. Its members are stored, not deflated: most pixel data is compressed
already, and a stored member is copied at disk speed (zip64 where an instance needs it)."""

import argparse
import asyncio
import os
import signal
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from types import FrameType

import anyio

from pacs.commands.opened import opened, placement
from pacs.commands.progress import FAILED, Tally
from pacs.service.errors import DataLoss, InvalidArgument
from pacs.service.export_files import (
    ExportItem,
    check,
    chunks,
    select_studies,
    study_items,
    write_file,
)
from pacs.service.targets import check_uid
from storage.backends import Placement
from storage.protocols import BlobStore

WRITTEN, ALREADY_THERE = "written", "already there"
JOBS = 4  # files written into a folder at once (a zip is written one member at a time)


class _Stopped(Exception):
    """The zip being written cannot be finished; the message says where and why."""


class _CtrlC:
    """While entered, a first Ctrl-C asks the export to stop once the files being written
    are whole (a thread cannot be cancelled midway); a second one stops it at once."""

    asked = False

    def __enter__(self) -> "_CtrlC":
        self._previous = signal.signal(signal.SIGINT, self._ask)
        return self

    def __exit__(self, *exc_info: object) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _ask(self, signum: int, frame: FrameType | None) -> None:
        self.asked = True
        signal.signal(signal.SIGINT, self._previous)


def run(args: argparse.Namespace) -> int:
    """Export `args.studies`, or every study with `args.all`, of the data directory
    `args.data` to `args.dest`; the exit code."""
    if args.all == bool(args.studies):
        raise SystemExit("pacs: give the Study Instance UIDs to export, or --all (not both)")
    try:
        for uid in args.studies:
            check_uid("study", uid)
    except InvalidArgument as exc:
        raise SystemExit(f"pacs: {exc.message}") from exc
    where = placement(args, existing=True)
    as_zip = _is_zip(args.dest)
    try:
        with _CtrlC() as ctrl_c:
            tally = asyncio.run(_export(args, where, as_zip, ctrl_c))
    except _Stopped as exc:
        raise SystemExit(f"pacs: {args.dest} was not written: {exc}") from exc
    except KeyboardInterrupt:
        raise SystemExit(f"pacs: export interrupted: {args.dest} was not written" if as_zip
                         else "pacs: export interrupted: the files written are whole; run "
                              "it again to finish") from None
    return tally.finish()


def _is_zip(dest: Path) -> bool:
    """Whether `dest` names a zip file to write, else a folder; SystemExit with one line
    for what can be neither."""
    if dest.is_dir():
        return False
    if dest.suffix.lower() != ".zip":
        if dest.exists():
            raise SystemExit(f"pacs: {dest} is a file: give a folder, or a path ending in "
                             ".zip to write a zip file")
        return False
    if dest.exists() and not zipfile.is_zipfile(dest):
        raise SystemExit(f"pacs: {dest} exists and is not a zip file (it is left as it is)")
    if not dest.parent.is_dir():
        raise SystemExit(f"pacs: cannot write {dest}: the folder {dest.parent} does not "
                         "exist")
    return True


async def _export(args: argparse.Namespace, where: Placement, as_zip: bool,
                  ctrl_c: _CtrlC) -> Tally:
    async with opened(where, args.store) as (archive, store):
        if not as_zip:
            try:
                args.dest.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SystemExit(f"pacs: cannot create the folder {args.dest}: "
                                 f"{exc.strerror or exc}") from exc
        chosen = await select_studies(archive, store, None if args.all else args.studies)
        outcomes = (WRITTEN, ALREADY_THERE, FAILED)  # a study not found is one failure
        with Tally("exporting", outcomes, chosen.instances + len(chosen.missing), chosen.size,
                   quiet=args.quiet) as tally, \
                _zip_file(args.dest) if as_zip else nullcontext() as out:
            for uid in chosen.missing:
                tally.add(FAILED, 0, f"study {uid}", f"not in store {store.name}")
            write = (partial(_write_file, archive.blobs, args.dest) if out is None
                     else partial(_add_member, out, archive.blobs))
            for study in chosen.studies:
                await _write_all(await study_items(archive, store, study), write,
                                 JOBS if out is None else 1, tally, ctrl_c)
                if ctrl_c.asked:
                    raise KeyboardInterrupt  # and an unfinished zip is removed
    return tally


async def _write_all(items: list[ExportItem], write: Callable[[ExportItem], str], jobs: int,
                     tally: Tally, ctrl_c: _CtrlC) -> None:
    """Each item written by `write` in a worker thread, `jobs` at once, and counted, until
    Ctrl-C; one whose blob is damaged or whose file cannot be written is a failure."""
    pending = iter(items)

    async def worker() -> None:
        for item in pending:
            if ctrl_c.asked:
                return
            try:
                outcome = await anyio.to_thread.run_sync(write, item)
            except DataLoss as exc:
                tally.add(FAILED, item.size, item.path, exc.message)
            except OSError as exc:
                tally.add(FAILED, item.size, item.path, str(exc))
            else:
                tally.add(outcome, item.size)
    await asyncio.gather(*(worker() for _ in range(jobs)))


def _write_file(blobs: BlobStore, root: Path, item: ExportItem) -> str:
    return WRITTEN if write_file(blobs, root, item) else ALREADY_THERE


@contextmanager
def _zip_file(dest: Path) -> Iterator[zipfile.ZipFile]:
    """A zip file written under a temporary name beside `dest`: renamed to `dest` once
    complete and on disk, removed if anything goes wrong (_Stopped if it cannot be
    written)."""
    temp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
    try:
        with temp.open("xb") as file:
            with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as archive:
                yield archive
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, dest)
    except BaseException as exc:
        temp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _Stopped(str(exc)) from exc
        raise
    folder = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename too is on disk
    finally:
        os.close(folder)


def _add_member(archive: zipfile.ZipFile, blobs: BlobStore, item: ExportItem) -> str:
    """Add the instance to the zip, its blob checked whole first: a member cannot be taken
    back. _Stopped if the zip cannot be written."""
    check(blobs, item)
    now = time.localtime()
    info = zipfile.ZipInfo(item.path, (now.tm_year, now.tm_mon, now.tm_mday, now.tm_hour,
                                       now.tm_min, now.tm_sec))
    info.file_size = item.size  # tells zipfile whether the member needs zip64
    info.external_attr = 0o644 << 16  # rw-r--r-- when extracted
    try:
        with archive.open(info, "w") as member:
            for data in chunks(blobs, item):
                member.write(data)
    except (OSError, DataLoss) as exc:
        raise _Stopped(f"{item.path}: {exc}") from exc
    return WRITTEN
