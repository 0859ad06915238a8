"""The shared InstanceIndex: PostgreSQL through asyncpg, for any number of archive replicas.

Concurrency is settled by the database, never by a process: every change of a study's
instances (add, replace, delete) first locks the study's row, so counts stay exact and
adds and deletes of one study take turns; concurrent stores of one instance settle through
its unique key (store, SOP Instance UID); an outcome other than STORED rolls its whole
transaction back, so it changes nothing."""

import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import orjson

from storage.index.attributes import COLUMNS, FOLDED_COLUMNS, column_value
from storage.index.connection import casefold
from storage.index.query_builder import SCOPE_FROM, SCOPE_ORDER, build_search, scope, search_row
from storage.levels import SERIES_TAGS, STUDY_TAGS
from storage.postgres import resources
from storage.postgres.connection import Pools
from storage.postgres.dialect import POSTGRES
from storage.postgres.migrations import REFUSED, RESOURCES_CHANNEL, migrate, newer_migrations
from storage.postgres.resources import NOW, queue_removals
from storage.query import Level, Query, SearchResult
from storage.rows import (
    AddOutcome,
    DatasetRow,
    InstanceLocation,
    InstanceMetadata,
    InstanceRecord,
    JobRow,
    Metrics,
    OperationRow,
    StoredInstance,
    StoreRow,
)

T = TypeVar("T")
_STUDY_COLUMNS = [(tag, col.split(".")[1]) for tag, (lvl, col) in COLUMNS.items()
                  if lvl is Level.STUDY]
_FOLDED = [(tag, column.split(".")[1]) for tag, column in FOLDED_COLUMNS.items()]
_SERIES_COLUMNS = [(tag, col.split(".")[1]) for tag, (lvl, col) in COLUMNS.items()
                   if lvl is Level.SERIES]
_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


class PostgresIndex:
    """InstanceIndex on PostgreSQL (`dsn`: postgresql://user@host/db, parameters such as
    ?search_path=schema as server settings): pools of `readers` and `writers` connections
    opened on first use; reads are cancelled after `read_time_limit` seconds; queued
    removals this index claims are left to it for `claim_seconds`."""

    def __init__(self, dsn: str, *, readers: int = 4, writers: int = 4,
                 read_time_limit: float = 30.0, claim_seconds: float = 600.0) -> None:
        self._db = Pools(dsn, readers, writers, read_time_limit)
        self._claimer = uuid.uuid4().hex  # names its claims on removals and jobs
        self._claim_seconds = claim_seconds

    async def migrate(self) -> list[str]:
        return await self._db.write(migrate)

    async def newer_migrations(self) -> list[str]:
        return await self._db.read(newer_migrations)

    async def ensure_store(self, name: str, profile: str) -> StoreRow:
        return await self._db.write(lambda conn: resources.ensure_store(conn, name, profile))

    async def get_store(self, name: str) -> StoreRow | None:
        return await self._db.read(lambda conn: resources.get_store(conn, name))

    async def create_dataset(self, name: str, time_zone: str) -> DatasetRow | None:
        return await self._change(resources.create_dataset, name, time_zone)

    async def get_dataset(self, name: str) -> DatasetRow | None:
        return await self._db.read(lambda conn: resources.get_dataset(conn, name))

    async def list_datasets(self, location: str, after: str, limit: int) -> list[DatasetRow]:
        return await self._db.read(
            lambda conn: resources.list_datasets(conn, location, after, limit))

    async def dataset_names(self) -> list[str]:
        return await self._db.read(resources.dataset_names)

    async def update_dataset(self, name: str, time_zone: str) -> DatasetRow | None:
        return await self._change(resources.update_dataset, name, time_zone)

    async def delete_dataset(self, name: str) -> list[str] | None:
        return await self._change(resources.delete_dataset, name)

    async def create_store(self, name: str, profile: str, config: str) -> StoreRow | None:
        return await self._change(resources.create_store, name, profile, config)

    async def list_stores(self, dataset: str, after: str, limit: int) -> list[StoreRow]:
        return await self._db.read(
            lambda conn: resources.list_stores(conn, dataset, after, limit))

    async def update_store(self, name: str, config: str) -> StoreRow | None:
        return await self._change(resources.update_store, name, config)

    async def delete_store(self, name: str) -> list[str] | None:
        return await self._change(resources.delete_store, name)

    async def get_policy(self, resource: str) -> str | None:
        return await self._db.read(lambda conn: resources.get_policy(conn, resource))

    async def set_policy(self, resource: str, body: str) -> None:
        await self._change(resources.set_policy, resource, body)

    async def add_operation(self, dataset: str, body: str,
                            job: str | None = None) -> OperationRow:
        return await self._change(resources.add_operation, dataset, body, job)

    async def claim_job(self, lease_seconds: float) -> JobRow | None:
        return await self._change(resources.claim_job, self._claimer, lease_seconds)

    async def save_job(self, operation: int, body: str, job: str | None,
                       release: bool = False) -> bool | None:
        return await self._change(resources.save_job, self._claimer, operation, body, job,
                                  release)

    async def cancel_job(self, dataset: str, operation: int) -> None:
        await self._change(resources.cancel_job, dataset, operation)

    async def get_operation(self, dataset: str, operation: int) -> OperationRow | None:
        return await self._db.read(
            lambda conn: resources.get_operation(conn, dataset, operation))

    async def list_operations(self, dataset: str, after: int,
                              limit: int) -> list[OperationRow]:
        return await self._db.read(
            lambda conn: resources.list_operations(conn, dataset, after, limit))

    async def _change(self, change: Callable[..., Awaitable[T]], *args: Any) -> T:
        """`change(conn, *args)` in one transaction on a writer."""
        return await self._db.write(lambda conn: change(conn, *args))

    async def add_instance(self, store_id: int, record: InstanceRecord, blob_name: str,
                           blob_size: int, sha256: str) -> AddOutcome:
        try:  # one statement: its own transaction
            return await self._db.write(
                lambda conn: _add(conn, store_id, record, blob_name, blob_size, sha256),
                transaction=False)
        except _Refused as refused:
            return refused.outcome

    async def replace_instance(self, store_id: int, record: InstanceRecord, blob_name: str,
                               blob_size: int, sha256: str) -> tuple[AddOutcome, str | None]:
        try:
            return await self._db.write(
                lambda conn: _replace(conn, store_id, record, blob_name, blob_size, sha256))
        except _Refused as refused:
            return refused.outcome, None

    async def search(self, store_id: int, query: Query) -> SearchResult:
        sql, params = build_search(POSTGRES, store_id, query)
        rows = await self._db.read(lambda conn: conn.fetch(sql, *params))
        return SearchResult([search_row(r) for r in rows[:query.limit]], len(rows) > query.limit)

    async def locate(self, store_id: int, study: str, series: str | None = None,
                     instance: str | None = None) -> list[InstanceLocation]:
        params = POSTGRES.params()
        where = scope(params, store_id, study, series, instance)
        rows = await self._db.read(lambda conn: conn.fetch(
            "SELECT st.study_uid, se.series_uid, i.sop_uid, i.sop_class_uid, "
            "i.transfer_syntax_uid, i.blob_name, i.blob_size, i.frames, i.bulk, i.storage_class "
            f"FROM {SCOPE_FROM} WHERE {where} {SCOPE_ORDER}", *params.values))
        return [InstanceLocation(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7].encode(),
                                 r[8].encode(), r[9]) for r in rows]

    async def metadata(self, store_id: int, study: str, series: str | None = None,
                       instance: str | None = None) -> list[InstanceMetadata]:
        params = POSTGRES.params()
        where = scope(params, store_id, study, series, instance)
        rows = await self._db.read(lambda conn: conn.fetch(
            f"SELECT st.study_uid, se.series_uid, i.sop_uid, i.metadata, i.blob_name "
            f"FROM {SCOPE_FROM} WHERE {where} {SCOPE_ORDER}", *params.values))
        return [InstanceMetadata(r[0], r[1], r[2], r[3].encode(), r[4]) for r in rows]

    async def delete(self, store_id: int, study: str, series: str | None = None,
                     instance: str | None = None) -> list[str] | None:
        params = POSTGRES.params()
        where = scope(params, store_id, study, series, instance)

        async def run(conn: asyncpg.Connection) -> list[str] | None:
            if await conn.fetchval("SELECT pk FROM studies WHERE store_id = $1 AND "
                                   "study_uid = $2 FOR UPDATE", store_id, study) is None:
                return None  # (an add that creates the study now comes after this delete)
            return await _delete(conn, where, params.values)
        return await self._db.write(run)

    async def metrics(self, store_id: int, study: str | None = None,
                      series: str | None = None) -> Metrics:
        params = POSTGRES.params()
        where = [f"st.store_id = {params(store_id)}"]
        for column, value in (("st.study_uid", study), ("se.series_uid", series)):
            if value is not None:
                where.append(f"{column} = {params(value)}")
        row = await self._db.read(lambda conn: conn.fetchrow(
            "SELECT count(DISTINCT i.study_pk), count(DISTINCT i.series_pk), count(*), "
            "coalesce(sum(i.blob_size), 0)::bigint, coalesce(sum(length(i.metadata) + "
            f"length(i.frames) + length(i.bulk)), 0)::bigint FROM {SCOPE_FROM} "
            f"WHERE {' AND '.join(where)}", *params.values))
        return Metrics(*row)

    async def referenced(self, blob_names: Sequence[str]) -> set[str]:
        rows = await self._db.read(lambda conn: conn.fetch(
            "SELECT blob_name FROM instances WHERE blob_name = ANY($1::text[]) UNION "
            "SELECT blob_name FROM blob_removals WHERE blob_name = ANY($1::text[])",
            list(blob_names)))
        return {r[0] for r in rows}

    async def check(self) -> None:
        await self._db.check()

    async def stored_sha256(self, store_id: int, sop_uid: str) -> str | None:
        sha256: str | None = await self._db.read(lambda conn: conn.fetchval(
            "SELECT sha256 FROM instances WHERE store_id = $1 AND sop_uid = $2",
            store_id, sop_uid))
        return sha256

    async def instances_after(self, after: int, limit: int,
                              store_id: int | None = None) -> list[StoredInstance]:
        of_store = "" if store_id is None else f" AND i.store_id = {int(store_id)}"
        rows = await self._db.read(lambda conn: conn.fetch(
            "SELECT i.pk, st.store_id, st.study_uid, se.series_uid, i.sop_uid, i.blob_name, "
            f"i.blob_size, i.sha256 FROM {SCOPE_FROM} WHERE i.pk > $1{of_store} "
            "ORDER BY i.pk LIMIT $2", after, limit))
        return [StoredInstance(*r) for r in rows]

    async def parents_astray(self, repair: bool) -> tuple[int, int]:
        if repair:
            return await self._db.write(lambda conn: _parents_astray(conn, True))
        return await self._db.read(lambda conn: _parents_astray(conn, False))

    async def queued_removals(self) -> int:
        count = await self._db.read(
            lambda conn: conn.fetchval("SELECT count(*) FROM blob_removals"))
        return int(count)

    async def due_removals(self, older_than: float, limit: int) -> list[str]:
        """Claims them too, FOR UPDATE SKIP LOCKED: other replicas draining the queue at the
        same time take other rows, and leave these to this index for `claim_seconds`
        (offered again to it at its next calls, until done)."""
        rows = await self._db.write(lambda conn: conn.fetch(
            f"UPDATE blob_removals SET claimed_by = $3, claimed_at = {NOW} "
            "WHERE blob_name IN (SELECT blob_name FROM blob_removals "
            f"WHERE queued_at < {NOW} - $1 AND (claimed_by IS NULL OR claimed_by = $3 "
            f"OR claimed_at < {NOW} - $4) ORDER BY queued_at LIMIT $2 "
            "FOR UPDATE SKIP LOCKED) RETURNING blob_name, queued_at",
            float(older_than), limit, self._claimer, self._claim_seconds))
        return [r[0] for r in sorted(rows, key=lambda r: r[1])]

    async def removals_done(self, blob_names: Sequence[str]) -> None:
        await self._db.write(lambda conn: conn.execute(
            "DELETE FROM blob_removals WHERE blob_name = ANY($1::text[])", list(blob_names)))

    async def on_resources_changed(self, callback: Callable[[], None]) -> None:
        await self._db.listen(RESOURCES_CHANNEL, callback)

    async def close(self) -> None:
        await self._db.close()


class _Refused(Exception):
    """An add refused after it changed rows: raised to roll its transaction back."""

    def __init__(self, outcome: AddOutcome) -> None:
        super().__init__(outcome.value)
        self.outcome = outcome


def _subset(attributes: dict[str, Any], tags: frozenset[int]) -> str:
    return orjson.dumps({k: v for k, v in attributes.items() if int(k, 16) in tags}).decode()


def _number(value: str | None) -> str | None:
    """A series or instance number for its numeric column; None unless it is a number
    (SQLite keeps such text in its column, sorted after the numbers)."""
    return value if value is not None and _NUMBER.fullmatch(value) else None


async def _add(conn: asyncpg.Connection, store_id: int, record: InstanceRecord,
               blob_name: str, blob_size: int, sha256: str) -> AddOutcome:
    """Add the instance in one statement (migrations.py: pacs_add_instance). An outcome
    other than STORED reached after rows were written is raised as _Refused: the statement,
    and the transaction it is part of, are rolled back."""
    attrs = record.attributes
    study = {column: record.study_uid if t == 0x0020000D else column_value(attrs, t)
             for t, column in _STUDY_COLUMNS}
    study.update((column, casefold(column_value(attrs, t))) for t, column in _FOLDED)
    series = {column: record.series_uid if t == 0x0020000E else _number(column_value(attrs, t))
              if t == 0x00200011 else column_value(attrs, t) for t, column in _SERIES_COLUMNS}
    instance = {
        "sop_uid": record.sop_uid, "sop_class_uid": record.sop_class_uid,
        "instance_number": _number(column_value(attrs, 0x00200013)),
        "transfer_syntax_uid": record.transfer_syntax_uid, "blob_name": blob_name,
        "blob_size": blob_size, "sha256": sha256, "storage_class": record.storage_class,
        "frames": orjson.dumps([[[s.offset, s.length] for s in f] for f in record.frames]).decode(),
        "bulk": orjson.dumps({p: [s.offset, s.length] for p, s in record.bulk.items()}).decode(),
        "stored_at": datetime.now(UTC).isoformat()}
    try:
        outcome = await conn.fetchval(
            "SELECT pacs_add_instance($1, $2, $3, $4, $5, $6, $7)", store_id,
            orjson.dumps(study).decode(), _subset(attrs, STUDY_TAGS),
            orjson.dumps(series).decode(), _subset(attrs, SERIES_TAGS),
            orjson.dumps(instance).decode(), record.metadata.decode())
    except asyncpg.PostgresError as exc:
        if exc.sqlstate == REFUSED:
            raise _Refused(AddOutcome(exc.message)) from exc
        raise
    return AddOutcome(outcome)


async def _replace(conn: asyncpg.Connection, store_id: int, record: InstanceRecord,
                   blob_name: str, blob_size: int,
                   sha256: str) -> tuple[AddOutcome, str | None]:
    existing = await conn.fetchrow(
        "SELECT i.sha256, i.blob_name FROM instances i JOIN studies st ON st.pk = i.study_pk "
        "WHERE i.store_id = $1 AND i.sop_uid = $2 FOR UPDATE OF st, i", store_id,
        record.sop_uid)
    if existing is None or existing["sha256"] == sha256:
        return await _add(conn, store_id, record, blob_name, blob_size, sha256), None
    await _delete(conn, "i.store_id = $1 AND i.sop_uid = $2", [store_id, record.sop_uid])
    outcome = await _add(conn, store_id, record, blob_name, blob_size, sha256)
    if outcome is not AddOutcome.STORED:
        raise _Refused(outcome)  # rolls back the delete and its queued removal too
    return outcome, existing["blob_name"]


async def _delete(conn: asyncpg.Connection, where: str,
                  params: list[object]) -> list[str] | None:
    """Remove the instances `where` selects, and their series and studies left empty; their
    blob names, whose removal is queued; None if none was there. The caller has locked
    their study."""
    rows = await conn.fetch(f"SELECT i.pk, i.blob_name, i.series_pk, i.study_pk FROM "
                            f"{SCOPE_FROM} WHERE {where}", *params)
    if not rows:
        return None
    series, studies = list({r[2] for r in rows}), list({r[3] for r in rows})
    await conn.execute("DELETE FROM instances WHERE pk = ANY($1::bigint[])", [r[0] for r in rows])
    await conn.execute("UPDATE series SET n_instances = (SELECT count(*) FROM instances WHERE "
                       "series_pk = series.pk) WHERE pk = ANY($1::bigint[])", series)
    await conn.execute("DELETE FROM series WHERE n_instances = 0 AND pk = ANY($1::bigint[])",
                       series)
    await conn.execute(
        "UPDATE studies SET n_instances = (SELECT count(*) FROM instances WHERE study_pk = "
        "studies.pk), n_series = (SELECT count(*) FROM series WHERE study_pk = studies.pk) "
        "WHERE pk = ANY($1::bigint[])", studies)
    await conn.execute("DELETE FROM studies WHERE n_instances = 0 AND pk = ANY($1::bigint[])",
                       studies)
    names = [r[1] for r in rows]
    await queue_removals(conn, names)
    return names


_SERIES_WRONG = ("FROM series WHERE n_instances != (SELECT count(*) FROM instances "
                 "WHERE series_pk = series.pk) OR n_instances = 0")
_STUDIES_WRONG = ("FROM studies WHERE n_instances != (SELECT count(*) FROM instances WHERE "
                  "study_pk = studies.pk) OR n_series != (SELECT count(*) FROM series WHERE "
                  "study_pk = studies.pk) OR n_instances = 0")


async def _parents_astray(conn: asyncpg.Connection, repair: bool) -> tuple[int, int]:
    studies = await conn.fetchval(f"SELECT count(*) {_STUDIES_WRONG}")
    series = await conn.fetchval(f"SELECT count(*) {_SERIES_WRONG}")
    if repair:  # series first: a study counts its series
        await conn.execute(f"UPDATE series SET n_instances = (SELECT count(*) FROM instances "
                           f"WHERE series_pk = series.pk) WHERE pk IN (SELECT pk {_SERIES_WRONG})")
        await conn.execute("DELETE FROM series WHERE n_instances = 0")
        await conn.execute(f"UPDATE studies SET n_instances = (SELECT count(*) FROM instances "
                           "WHERE study_pk = studies.pk), n_series = (SELECT count(*) FROM "
                           f"series WHERE study_pk = studies.pk) WHERE pk IN "
                           f"(SELECT pk {_STUDIES_WRONG})")
        await conn.execute("DELETE FROM studies WHERE n_instances = 0")
    return int(studies), int(series)
