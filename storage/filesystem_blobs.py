"""Blobs as files: staged in `staging/`, fsync'd, then atomically renamed into `blobs/`.

Names are fresh UUIDs, never reused, so a name in the index always means the same bytes.
"""

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from storage.protocols import StagedBlob


class FileStagedBlob:
    """A file being received in the staging directory."""

    def __init__(self, directory: Path) -> None:
        self._path = directory / f"{uuid.uuid4().hex}.part"
        self._file = open(self._path, "xb")  # noqa: SIM115 - closed by commit/discard
        self._hash = hashlib.sha256()
        self._size = 0

    @property
    def path(self) -> str:
        return str(self._path)

    @property
    def size(self) -> int:
        return self._size

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self._size += len(data)

    def close(self) -> None:
        self._file.close()

    def make_durable(self) -> None:
        """fsync the complete file (any descriptor of it will do on POSIX)."""
        self._file.close()
        fd = os.open(self._path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def discard(self) -> None:
        self._file.close()
        self._path.unlink(missing_ok=True)


class FilesystemBlobStore:
    """BlobStore on a local directory."""

    def __init__(self, root: Path) -> None:
        self._blobs = root / "blobs"
        self._staging = root / "staging"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._staging.mkdir(parents=True, exist_ok=True)

    def stage(self) -> FileStagedBlob:
        return FileStagedBlob(self._staging)

    def commit(self, staged: StagedBlob) -> str:
        if not isinstance(staged, FileStagedBlob):
            raise TypeError("a filesystem blob store commits only what it staged")
        staged.make_durable()
        name = uuid.uuid4().hex
        target = self._path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.path, target)
        _fsync_dir(target.parent)
        return name

    def read(self, name: str, offset: int, length: int) -> bytes:
        fd = os.open(self._path(name), os.O_RDONLY)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def names(self) -> Iterator[str]:
        """Every blob stored; files that are not blobs (a stray `.DS_Store`) are skipped."""
        for path in self._blobs.glob("*/*/*"):
            if _is_blob_name(path.name) and path.parent == self._path(path.name).parent:
                yield path.name

    def discard_staging(self) -> None:
        for path in self._staging.iterdir():
            path.unlink(missing_ok=True)

    def _path(self, name: str) -> Path:
        if not _is_blob_name(name):
            raise ValueError(f"not a blob name: {name!r}")
        return self._blobs / name[:2] / name[2:4] / name


def _is_blob_name(name: str) -> bool:
    return len(name) == 32 and all(c in "0123456789abcdef" for c in name)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
