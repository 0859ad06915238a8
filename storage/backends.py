"""Which implementation keeps an archive's index and its blobs, by the URL configured for
each (`pacs serve --index`, `--blobs`): one table per Protocol, keyed by the URL's scheme.
No URL is the embedded default, in the data directory: SQLite and a folder of files.
PostgreSQL and S3 need the optional extra `pacs[scale]` (asyncpg, obstore)."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from storage.filesystem_blobs import FilesystemBlobStore
from storage.index.sqlite_index import SqliteIndex
from storage.protocols import BlobStore, InstanceIndex

SCALE = "pip install 'pacs[scale]'"
T = TypeVar("T")


@dataclass(frozen=True)
class Placement:
    """Where an archive keeps its index and blobs, and how the index is read."""

    data_dir: Path  # the embedded index and blobs, and every store's staging
    index_url: str = ""  # postgresql://…, or "" for SQLite in data_dir
    blobs_url: str = ""  # s3://bucket/prefix, or "" for files in data_dir
    readers: int = 4  # index connections reading at once
    read_time_limit: float = 30.0  # seconds a read may run
    read_only: bool = False  # the data directory cannot be written

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "index.sqlite3"


def _sqlite(where: Placement) -> InstanceIndex:
    return SqliteIndex(where.sqlite_path, readers=where.readers,
                       read_time_limit=where.read_time_limit, read_only=where.read_only)


def _postgres(where: Placement) -> InstanceIndex:
    try:
        from storage.postgres.postgres_index import PostgresIndex
    except ImportError as exc:
        raise ValueError(f"a PostgreSQL index needs asyncpg: {SCALE}") from exc
    return PostgresIndex(where.index_url, readers=where.readers,
                         read_time_limit=where.read_time_limit)


def _files(where: Placement) -> BlobStore:
    return FilesystemBlobStore(where.data_dir)


def _s3(where: Placement) -> BlobStore:
    try:
        from storage.s3_blobs import S3BlobStore
    except ImportError as exc:
        raise ValueError(f"an S3 blob store needs obstore: {SCALE}") from exc
    return S3BlobStore.from_url(where.blobs_url, where.data_dir / "staging")


INDEXES: dict[str, Callable[[Placement], InstanceIndex]] = {
    "": _sqlite, "postgresql": _postgres, "postgres": _postgres}
BLOB_STORES: dict[str, Callable[[Placement], BlobStore]] = {"": _files, "s3": _s3}


def open_index(where: Placement) -> InstanceIndex:
    """The index `where.index_url` names; ValueError for one no implementation serves."""
    return chosen(INDEXES, where.index_url, "index")(where)


def open_blob_store(where: Placement) -> BlobStore:
    """The blob store `where.blobs_url` names; ValueError for one no implementation serves."""
    return chosen(BLOB_STORES, where.blobs_url, "blob store")(where)


def chosen(table: dict[str, T], url: str, what: str) -> T:
    """The entry of `table` for `url`'s scheme; ValueError naming the schemes there are (not
    the URL: it may hold a password)."""
    scheme = urlsplit(url).scheme
    if scheme not in table:
        known = ", ".join(f"{s}://…" for s in table if s)
        raise ValueError(f"no {what} is kept at {scheme}://…: give {known}, or nothing for "
                         "the data directory")
    return table[scheme]
