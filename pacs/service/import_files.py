"""Import files into a store (`pacs import`): Part 10 files given one by one, in folders
(recursively) or in zip archives, each stored through the one store path, so with the same
validation and conflict rules as STOW. An instance already stored with the same bytes (the
same SHA-256 under its SOP Instance UID) is skipped without being copied again, so an
interrupted import can simply be run again."""

import hashlib
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import IO

import anyio
from pydicom import dcmread

from pacs.service.archive import Archive
from pacs.service.staging import stage_all
from pacs.service.store_instances import StoreOutcome, store_staged
from pacs.service.stores import StoreContext
from storage.protocols import StagedBlob

READ_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Source:
    """One file to import: its name as the user knows it (a path, or ZIP!member), how to
    open it and its size."""

    name: str
    open: Callable[[], IO[bytes]]
    size: int


class Result(Enum):
    STORED = "stored"
    ALREADY_STORED = "already stored"
    FAILED = "failed"


def sources(paths: list[Path]) -> Iterator[Source]:
    """The files `paths` name: files as they are, folders walked in name order, zip files'
    members. FileNotFoundError for a path that does not exist."""
    for path in paths:
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                if found.is_file():
                    yield from _sources_of(found)
        elif path.exists():
            yield from _sources_of(path)
        else:
            raise FileNotFoundError(path)


def _sources_of(path: Path) -> Iterator[Source]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
        for member in members:
            yield Source(f"{path}!{member.filename}", _zip_member(path, member.filename),
                         member.file_size)
    else:
        yield Source(str(path), lambda: path.open("rb"), path.stat().st_size)


def _zip_member(path: Path, name: str) -> Callable[[], IO[bytes]]:
    def open_member() -> IO[bytes]:
        archive = zipfile.ZipFile(path)  # closed with the member: it holds the file open
        member = archive.open(name)
        member_close = member.close

        def close() -> None:
            member_close()
            archive.close()
        member.close = close  # type: ignore[method-assign]
        return member
    return open_member


async def import_one(archive: Archive, store: StoreContext, source: Source
                     ) -> tuple[Result, str]:
    """Store one source unless the same bytes are stored under its SOP Instance UID; the
    result and, for a failure, why."""
    sha256, sop_uid = await anyio.to_thread.run_sync(identify, source)
    if sop_uid and await archive.index.stored_sha256(store.id, sop_uid) == sha256:
        return Result.ALREADY_STORED, ""
    staged = await anyio.to_thread.run_sync(_stage, archive, source)
    outcome = StoreOutcome()
    await store_staged(archive, store, staged, outcome)
    if outcome.stored:
        return (Result.ALREADY_STORED if outcome.duplicate else Result.STORED), ""
    return Result.FAILED, outcome.detail


def identify(source: Source) -> tuple[str, str]:
    """The source's SHA-256, and its SOP Instance UID if its header can be read ("" if not:
    storing it will say why)."""
    digest = hashlib.sha256()
    with source.open() as file:
        for chunk in iter(lambda: file.read(READ_BYTES), b""):
            digest.update(chunk)
    try:
        with source.open() as file:
            ds = dcmread(file, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
        sop_uid = str(ds.get("SOPInstanceUID", "") or "")
    except Exception:  # noqa: BLE001 - not readable here: the store path reports why
        sop_uid = ""
    return digest.hexdigest(), sop_uid


def _stage(archive: Archive, source: Source) -> StagedBlob:
    with source.open() as file:
        return stage_all(archive.blobs, iter(lambda: file.read(READ_BYTES), b""))
