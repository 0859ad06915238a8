"""The blob files of a data directory as the archive sees them: those an index row points
at, apart from the blobs of deleted instances still in their grace (queued for removal)."""

import sqlite3
from contextlib import closing
from pathlib import Path


def queued_removals(data_dir: Path) -> set[str]:
    """Blob names whose removal the index has queued (deleted or replaced instances')."""
    uri = f"{(data_dir / 'index.sqlite3').resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        return {row[0] for row in conn.execute("SELECT blob_name FROM blob_removals")}


def blob_files(data_dir: Path) -> list[Path]:
    """The blob files on disk, in name order, without those queued for removal."""
    queued = queued_removals(data_dir)
    return sorted(p for p in (data_dir / "blobs").glob("*/*/*")
                  if p.is_file() and p.name not in queued)
