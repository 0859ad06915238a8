"""Blobs as files: staged in `staging/`, fsync'd, then atomically renamed into `blobs/`.

Names are fresh UUIDs, never reused, so a name in the index always means the same bytes.
A blob's age is its file's modification time: the last byte written before its commit.
"""

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from storage.protocols import StagedBlob


class Receiving:
    """The staging files this process has open, which its cleanup never removes."""

    def __init__(self) -> None:
        self._paths: set[Path] = set()
        self._lock = threading.Lock()

    def add(self, path: Path) -> None:
        with self._lock:
            self._paths.add(path)

    def remove(self, path: Path) -> None:
        with self._lock:
            self._paths.discard(path)

    def __contains__(self, path: object) -> bool:
        with self._lock:
            return path in self._paths


class FileStagedBlob:
    """A file being received in the staging directory."""

    def __init__(self, directory: Path, receiving: Receiving) -> None:
        self._path = directory / f"{uuid.uuid4().hex}.part"
        self._receiving = receiving
        receiving.add(self._path)
        self._file = open(self._path, "xb")  # noqa: SIM115 - closed by commit/discard
        self._hash = hashlib.sha256()
        self._size = 0

    @property
    def path(self) -> Path:
        return self._path

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

    def open(self) -> BinaryIO:
        return open(self._path, "rb")  # noqa: SIM115 - the caller closes it

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
        self.released()

    def released(self) -> None:
        """The file is committed or gone: no longer this process's to keep."""
        self._receiving.remove(self._path)


class FilesystemBlobStore:
    """BlobStore on a local directory."""

    read_size = 1024**2  # bigger reads stream no faster from a file (benchmarks/s3_blobs.py)

    def __init__(self, root: Path) -> None:
        self._blobs = root / "blobs"
        self._staging = root / "staging"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._staging.mkdir(parents=True, exist_ok=True)
        self._receiving = Receiving()

    def stage(self) -> FileStagedBlob:
        return FileStagedBlob(self._staging, self._receiving)

    def commit(self, staged: StagedBlob) -> str:
        if not isinstance(staged, FileStagedBlob) or staged.path.parent != self._staging:
            raise TypeError("a filesystem blob store commits only what it staged")
        staged.make_durable()
        name = uuid.uuid4().hex
        target = self._path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.path, target)
        staged.released()
        _fsync_dir(target.parent)
        return name

    def read(self, name: str, offset: int, length: int) -> bytes:
        fd = os.open(self._path(name), os.O_RDONLY)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def size(self, name: str) -> int:
        return self._path(name).stat().st_size

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def names(self, older_than: float) -> Iterator[str]:
        """Files that are not blobs (a stray `.DS_Store`) are skipped."""
        for path in self._blobs.glob("*/*/*"):
            if is_blob_name(path.name) and path.parent == self._path(path.name).parent \
                    and blob_age(path) > older_than:
                yield path.name

    def check(self) -> None:
        for directory in (self._blobs, self._staging):
            if not directory.is_dir():
                raise FileNotFoundError(f"{directory} is missing")

    def count_staging(self, older_than: float) -> int:
        return len(self._leftovers(older_than))

    def discard_staging(self, older_than: float) -> int:
        leftovers = self._leftovers(older_than)
        for path in leftovers:
            path.unlink(missing_ok=True)
        return len(leftovers)

    def _leftovers(self, older_than: float) -> list[Path]:
        return [path for path in self._staging.iterdir()
                if path not in self._receiving and blob_age(path) > older_than]

    def _path(self, name: str) -> Path:
        if not is_blob_name(name):
            raise ValueError(f"not a blob name: {name!r}")
        return self._blobs / name[:2] / name[2:4] / name


def blob_age(path: Path) -> float:
    """Seconds since the file was last written (infinite once it is gone)."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def is_blob_name(name: str) -> bool:
    """Whether `name` is one a blob store hands out: a UUID4 as 32 hex digits."""
    return len(name) == 32 and all(c in "0123456789abcdef" for c in name)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
