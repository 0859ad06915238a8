"""Datasets, DICOM stores and long-running operations in the SQLite index: one function per
change, each run in a transaction on the writer thread (or on a reader, for lookups).

A deleted store keeps its row, renamed out of the way and marked deleted, so that its id is
never given to another store (caches may hold an id for a moment after a delete)."""

import sqlite3
import time
from datetime import UTC, datetime

from storage.rows import DatasetRow, JobRow, OperationRow, StoreRow

_STORE = "SELECT id, name, profile, config FROM stores"
_DATASET = "SELECT name, time_zone, created_at FROM datasets"


def create_dataset(conn: sqlite3.Connection, name: str, time_zone: str) -> DatasetRow | None:
    if conn.execute("SELECT 1 FROM datasets WHERE name = ?", (name,)).fetchone():
        return None
    conn.execute("INSERT INTO datasets (name, time_zone, created_at) VALUES (?, ?, ?)",
                 (name, time_zone, datetime.now(UTC).isoformat()))
    return get_dataset(conn, name)


def get_dataset(conn: sqlite3.Connection, name: str) -> DatasetRow | None:
    row = conn.execute(f"{_DATASET} WHERE name = ?", (name,)).fetchone()
    return None if row is None else DatasetRow(*row)


def list_datasets(conn: sqlite3.Connection, location: str, after: str,
                  limit: int) -> list[DatasetRow]:
    prefix = f"{location}/datasets/"
    rows = conn.execute(f"{_DATASET} WHERE name > ? AND substr(name, 1, ?) = ? "
                        "ORDER BY name LIMIT ?", (after, len(prefix), prefix, limit))
    return [DatasetRow(*row) for row in rows]


def dataset_names(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT name FROM datasets ORDER BY name")]


def update_dataset(conn: sqlite3.Connection, name: str, time_zone: str) -> DatasetRow | None:
    conn.execute("UPDATE datasets SET time_zone = ? WHERE name = ?", (time_zone, name))
    return get_dataset(conn, name)


def delete_dataset(conn: sqlite3.Connection, name: str) -> list[str] | None:
    """Remove the dataset, its stores and its operations; the blob names, whose removal is
    queued."""
    if get_dataset(conn, name) is None:
        return None
    blobs: list[str] = []
    for store in list_stores(conn, name, "", -1):
        blobs += delete_store(conn, store.name) or []
    conn.execute("DELETE FROM operations WHERE dataset = ?", (name,))
    conn.execute("DELETE FROM datasets WHERE name = ?", (name,))
    return blobs


def create_store(conn: sqlite3.Connection, name: str, profile: str,
                 config: str) -> StoreRow | None:
    if get_store(conn, name) is not None:
        return None
    conn.execute("INSERT INTO stores (name, profile, config) VALUES (?, ?, ?)",
                 (name, profile, config))
    return get_store(conn, name)


def get_store(conn: sqlite3.Connection, name: str) -> StoreRow | None:
    row = conn.execute(f"{_STORE} WHERE name = ? AND deleted = 0", (name,)).fetchone()
    return None if row is None else StoreRow(*row)


def list_stores(conn: sqlite3.Connection, dataset: str, after: str,
                limit: int) -> list[StoreRow]:
    prefix = f"{dataset}/dicomStores/"
    rows = conn.execute(f"{_STORE} WHERE deleted = 0 AND name > ? AND substr(name, 1, ?) = ? "
                        "ORDER BY name LIMIT ?", (after, len(prefix), prefix, limit))
    return [StoreRow(*row) for row in rows]


def update_store(conn: sqlite3.Connection, name: str, config: str) -> StoreRow | None:
    conn.execute("UPDATE stores SET config = ? WHERE name = ? AND deleted = 0", (config, name))
    return get_store(conn, name)


def delete_store(conn: sqlite3.Connection, name: str) -> list[str] | None:
    """Remove the store's instances, series and studies and retire its row; the blob names,
    whose removal is queued."""
    store = get_store(conn, name)
    if store is None:
        return None
    blobs = [r[0] for r in conn.execute("SELECT blob_name FROM instances WHERE store_id = ?",
                                        (store.id,))]
    queue_removals(conn, blobs)
    for table in ("instances", "series", "studies"):
        conn.execute(f"DELETE FROM {table} WHERE store_id = ?", (store.id,))
    conn.execute("UPDATE stores SET deleted = 1, name = 'deleted/' || id || '/' || name "
                 "WHERE id = ?", (store.id,))
    return blobs


def queue_removals(conn: sqlite3.Connection, names: list[str]) -> None:
    """Queue the blobs of removed rows for removal after the grace period."""
    now = time.time()
    conn.executemany("INSERT OR IGNORE INTO blob_removals VALUES (?, ?)",
                     [(name, now) for name in names])


def add_operation(conn: sqlite3.Connection, dataset: str, body: str,
                  job: str | None) -> OperationRow:
    cursor = conn.execute("INSERT INTO operations (dataset, body, job) VALUES (?, ?, ?)",
                          (dataset, body, job))
    return OperationRow(int(cursor.lastrowid or 0), dataset, body)


# unfinished jobs no index holds, or whose holder has not saved them since the parameter
_CLAIMABLE = "job IS NOT NULL AND (claimed_by IS NULL OR claimed_at < ?)"


def any_claimable(conn: sqlite3.Connection, lease_seconds: float) -> bool:
    """Whether a job waits to be claimed: a read, so that every worker looking every few
    seconds does not take the write lock to find nothing."""
    return conn.execute(f"SELECT 1 FROM operations WHERE {_CLAIMABLE} LIMIT 1",
                        (time.time() - lease_seconds,)).fetchone() is not None


def claim_job(conn: sqlite3.Connection, claimer: str, lease_seconds: float) -> JobRow | None:
    now = time.time()
    row = conn.execute("SELECT id, dataset, body, job, claims + 1 FROM operations "
                       f"WHERE {_CLAIMABLE} ORDER BY id LIMIT 1",
                       (now - lease_seconds,)).fetchone()
    if row is None:
        return None
    conn.execute("UPDATE operations SET claimed_by = ?, claimed_at = ?, claims = claims + 1 "
                 "WHERE id = ?", (claimer, now, row[0]))
    return JobRow(*row)


def save_job(conn: sqlite3.Connection, claimer: str, operation: int, body: str,
             job: str | None, release: bool) -> bool | None:
    row = conn.execute("SELECT cancel FROM operations WHERE id = ? AND claimed_by = ?",
                       (operation, claimer)).fetchone()
    if row is None:
        return None
    conn.execute("UPDATE operations SET body = ?, job = ?, claimed_at = ?, claimed_by = ? "
                 "WHERE id = ?", (body, job, time.time(),
                                  None if job is None or release else claimer, operation))
    return bool(row[0])


def cancel_job(conn: sqlite3.Connection, dataset: str, operation: int) -> None:
    conn.execute("UPDATE operations SET cancel = 1 WHERE dataset = ? AND id = ? AND "
                 "job IS NOT NULL", (dataset, operation))


def get_operation(conn: sqlite3.Connection, dataset: str,
                  operation: int) -> OperationRow | None:
    row = conn.execute("SELECT id, dataset, body FROM operations WHERE dataset = ? AND id = ?",
                       (dataset, operation)).fetchone()
    return None if row is None else OperationRow(*row)


def list_operations(conn: sqlite3.Connection, dataset: str, after: int,
                    limit: int) -> list[OperationRow]:
    rows = conn.execute("SELECT id, dataset, body FROM operations WHERE dataset = ? AND id > ? "
                        "ORDER BY id LIMIT ?", (dataset, after, limit))
    return [OperationRow(*row) for row in rows]


def get_policy(conn: sqlite3.Connection, resource: str) -> str | None:
    row = conn.execute("SELECT body FROM policies WHERE resource = ?", (resource,)).fetchone()
    return None if row is None else str(row[0])


def set_policy(conn: sqlite3.Connection, resource: str, body: str) -> None:
    conn.execute("INSERT INTO policies (resource, body) VALUES (?, ?) ON CONFLICT (resource) "
                 "DO UPDATE SET body = excluded.body", (resource, body))
