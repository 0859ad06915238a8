"""Datasets, DICOM stores, operations, IAM policies and the blob removal queue in the
PostgreSQL index: one coroutine per change, run in a writer's transaction (or on a reader,
for lookups), as `storage/index/resources.py` does for SQLite.

Creations are settled by the unique keys (INSERT … ON CONFLICT DO NOTHING), so that
replicas creating the same dataset or store at once agree on one. A deleted store keeps its
row, renamed out of the way and marked deleted: its id is never given to another store."""

from datetime import UTC, datetime

import asyncpg

from storage.rows import DatasetRow, JobRow, OperationRow, StoreRow

_STORE = "SELECT id, name, profile, config FROM stores"
_DATASET = "SELECT name, time_zone, created_at FROM datasets"
# the database's clock, so that replicas with clocks apart agree on a removal's age
NOW = "extract(epoch FROM clock_timestamp())"


def _limit(limit: int) -> int | None:
    """A negative limit means all (LIMIT NULL here, LIMIT -1 in SQLite)."""
    return None if limit < 0 else limit


async def create_dataset(conn: asyncpg.Connection, name: str,
                         time_zone: str) -> DatasetRow | None:
    row = await conn.fetchrow(
        "INSERT INTO datasets (name, time_zone, created_at) VALUES ($1, $2, $3) "
        "ON CONFLICT (name) DO NOTHING RETURNING name, time_zone, created_at",
        name, time_zone, datetime.now(UTC).isoformat())
    return None if row is None else DatasetRow(*row)


async def get_dataset(conn: asyncpg.Connection, name: str) -> DatasetRow | None:
    row = await conn.fetchrow(f"{_DATASET} WHERE name = $1", name)
    return None if row is None else DatasetRow(*row)


async def list_datasets(conn: asyncpg.Connection, location: str, after: str,
                        limit: int) -> list[DatasetRow]:
    rows = await conn.fetch(f"{_DATASET} WHERE name > $1 AND starts_with(name, $2) "
                            "ORDER BY name LIMIT $3", after, f"{location}/datasets/",
                            _limit(limit))
    return [DatasetRow(*row) for row in rows]


async def dataset_names(conn: asyncpg.Connection) -> list[str]:
    return [row[0] for row in await conn.fetch("SELECT name FROM datasets ORDER BY name")]


async def update_dataset(conn: asyncpg.Connection, name: str,
                         time_zone: str) -> DatasetRow | None:
    row = await conn.fetchrow("UPDATE datasets SET time_zone = $1 WHERE name = $2 "
                              "RETURNING name, time_zone, created_at", time_zone, name)
    return None if row is None else DatasetRow(*row)


async def delete_dataset(conn: asyncpg.Connection, name: str) -> list[str] | None:
    """Remove the dataset, its stores and its operations; the blob names, whose removal is
    queued."""
    if await get_dataset(conn, name) is None:
        return None
    blobs: list[str] = []
    for store in await list_stores(conn, name, "", -1):
        blobs += await delete_store(conn, store.name) or []
    await conn.execute("DELETE FROM operations WHERE dataset = $1", name)
    await conn.execute("DELETE FROM datasets WHERE name = $1", name)
    return blobs


async def ensure_store(conn: asyncpg.Connection, name: str, profile: str) -> StoreRow:
    """The store `name`, created with its dataset if need be."""
    await conn.execute("INSERT INTO datasets (name, created_at) VALUES ($1, $2) "
                       "ON CONFLICT (name) DO NOTHING", name.split("/dicomStores/")[0],
                       datetime.now(UTC).isoformat())
    found = await create_store(conn, name, profile, "{}") or await get_store(conn, name)
    assert found is not None  # created by this transaction or by a committed one
    return found


async def create_store(conn: asyncpg.Connection, name: str, profile: str,
                       config: str) -> StoreRow | None:
    row = await conn.fetchrow(
        "INSERT INTO stores (name, profile, config) VALUES ($1, $2, $3) "
        "ON CONFLICT (name) DO NOTHING RETURNING id, name, profile, config",
        name, profile, config)
    return None if row is None else StoreRow(*row)


async def get_store(conn: asyncpg.Connection, name: str) -> StoreRow | None:
    row = await conn.fetchrow(f"{_STORE} WHERE name = $1 AND NOT deleted", name)
    return None if row is None else StoreRow(*row)


async def list_stores(conn: asyncpg.Connection, dataset: str, after: str,
                      limit: int) -> list[StoreRow]:
    rows = await conn.fetch(f"{_STORE} WHERE NOT deleted AND name > $1 AND "
                            "starts_with(name, $2) ORDER BY name LIMIT $3",
                            after, f"{dataset}/dicomStores/", _limit(limit))
    return [StoreRow(*row) for row in rows]


async def update_store(conn: asyncpg.Connection, name: str, config: str) -> StoreRow | None:
    row = await conn.fetchrow("UPDATE stores SET config = $1 WHERE name = $2 AND NOT deleted "
                              "RETURNING id, name, profile, config", config, name)
    return None if row is None else StoreRow(*row)


async def delete_store(conn: asyncpg.Connection, name: str) -> list[str] | None:
    """Remove the store's instances, series and studies and retire its row; the blob names,
    whose removal is queued. Its studies are locked first, as every change of a study's
    instances locks the study first (`add_instance`, `delete`)."""
    store = await get_store(conn, name)
    if store is None:
        return None
    await conn.execute("SELECT 1 FROM studies WHERE store_id = $1 ORDER BY pk FOR UPDATE",
                       store.id)
    blobs = [r[0] for r in await conn.fetch(
        "DELETE FROM instances WHERE store_id = $1 RETURNING blob_name", store.id)]
    await queue_removals(conn, blobs)
    for table in ("series", "studies"):
        await conn.execute(f"DELETE FROM {table} WHERE store_id = $1", store.id)
    await conn.execute("UPDATE stores SET deleted = true, name = 'deleted/' || id || '/' || name "
                       "WHERE id = $1", store.id)
    return blobs


async def queue_removals(conn: asyncpg.Connection, names: list[str]) -> None:
    """Queue the blobs of removed rows for removal after the grace period."""
    await conn.execute("INSERT INTO blob_removals (blob_name, queued_at) SELECT "
                       f"unnest($1::text[]), {NOW} ON CONFLICT DO NOTHING", names)


async def add_operation(conn: asyncpg.Connection, dataset: str, body: str,
                        job: str | None) -> OperationRow:
    operation = await conn.fetchval("INSERT INTO operations (dataset, body, job) "
                                    "VALUES ($1, $2, $3) RETURNING id", dataset, body, job)
    return OperationRow(operation, dataset, body)


async def claim_job(conn: asyncpg.Connection, claimer: str,
                    lease_seconds: float) -> JobRow | None:
    """FOR UPDATE SKIP LOCKED: replicas claiming at the same moment take different jobs."""
    row = await conn.fetchrow(
        f"UPDATE operations SET claimed_by = $1, claimed_at = {NOW}, claims = claims + 1 "
        "WHERE id = (SELECT id FROM operations WHERE job IS NOT NULL AND (claimed_by IS NULL "
        f"OR claimed_at < {NOW} - $2) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) "
        "RETURNING id, dataset, body, job, claims", claimer, float(lease_seconds))
    return None if row is None else JobRow(*row)


async def save_job(conn: asyncpg.Connection, claimer: str, operation: int, body: str,
                   job: str | None, release: bool) -> bool | None:
    cancel: bool | None = await conn.fetchval(
        f"UPDATE operations SET body = $3, job = $4, claimed_at = {NOW}, claimed_by = $5 "
        "WHERE id = $1 AND claimed_by = $2 RETURNING cancel", operation, claimer, body, job,
        None if job is None or release else claimer)
    return cancel


async def cancel_job(conn: asyncpg.Connection, dataset: str, operation: int) -> None:
    await conn.execute("UPDATE operations SET cancel = true WHERE dataset = $1 AND id = $2 "
                       "AND job IS NOT NULL", dataset, operation)


async def get_operation(conn: asyncpg.Connection, dataset: str,
                        operation: int) -> OperationRow | None:
    row = await conn.fetchrow("SELECT id, dataset, body FROM operations WHERE dataset = $1 "
                              "AND id = $2", dataset, operation)
    return None if row is None else OperationRow(*row)


async def list_operations(conn: asyncpg.Connection, dataset: str, after: int,
                          limit: int) -> list[OperationRow]:
    rows = await conn.fetch("SELECT id, dataset, body FROM operations WHERE dataset = $1 AND "
                            "id > $2 ORDER BY id LIMIT $3", dataset, after, _limit(limit))
    return [OperationRow(*row) for row in rows]


async def get_policy(conn: asyncpg.Connection, resource: str) -> str | None:
    body: str | None = await conn.fetchval("SELECT body FROM policies WHERE resource = $1",
                                           resource)
    return body


async def set_policy(conn: asyncpg.Connection, resource: str, body: str) -> None:
    await conn.execute("INSERT INTO policies (resource, body) VALUES ($1, $2) ON CONFLICT "
                       "(resource) DO UPDATE SET body = excluded.body", resource, body)
