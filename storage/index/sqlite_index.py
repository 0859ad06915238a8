"""The embedded InstanceIndex: one SQLite file in WAL mode."""

import errno
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from storage.index import resources
from storage.index.attributes import COLUMNS, FOLDED_COLUMNS, column_value
from storage.index.connection import Connections, casefold, transaction
from storage.index.migrations import migrate, pending, unknown_applied
from storage.index.query_builder import (
    SCOPE_FROM,
    SCOPE_ORDER,
    SQLITE,
    build_search,
    scope,
    search_row,
)
from storage.levels import SERIES_TAGS, STUDY_TAGS
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

_STUDY_COLUMNS = [(tag, col.split(".")[1]) for tag, (lvl, col) in COLUMNS.items()
                  if lvl is Level.STUDY]
_FOLDED = [(tag, column.split(".")[1]) for tag, column in FOLDED_COLUMNS.items()]
_SERIES_COLUMNS = [(tag, col.split(".")[1]) for tag, (lvl, col) in COLUMNS.items()
                   if lvl is Level.SERIES]
T = TypeVar("T")
_MATCH_BATCH = 500  # blob names per IN (...) list, well under SQLite's 32,766 parameters


class SqliteIndex:
    """InstanceIndex on SQLite: transactions on one writer thread, reads on reader threads."""

    def __init__(self, path: Path, *, readers: int = 4, read_time_limit: float = 30.0,
                 read_only: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._db = Connections(path, readers, read_time_limit, read_only)
        self._read_only = read_only
        self._claimer = uuid.uuid4().hex  # names the jobs this index holds

    async def migrate(self) -> list[str]:
        """Bring the schema up to date (called once at startup); a read-only index must be
        up to date already (OSError otherwise)."""
        if not self._read_only:
            return await self._db.write(migrate)
        if needed := await self._db.read(pending):
            raise OSError(errno.EROFS, f"the index is read-only and needs migrations "
                          f"{', '.join(needed)}; open it once writable")
        return []

    async def newer_migrations(self) -> list[str]:
        return unknown_applied(self._path)

    async def ensure_store(self, name: str, profile: str) -> StoreRow:
        def run(conn: sqlite3.Connection) -> StoreRow:
            dataset = name.split("/dicomStores/")[0]
            conn.execute("INSERT INTO datasets (name, created_at) VALUES (?, ?) "
                         "ON CONFLICT (name) DO NOTHING", (dataset, datetime.now(UTC).isoformat()))
            found = resources.get_store(conn, name) or \
                resources.create_store(conn, name, profile, "{}")
            assert found is not None  # just created, in this transaction
            return found
        return await self._db.write(lambda conn: transaction(conn, run))

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
        if not await self._db.read(lambda conn: resources.any_claimable(conn, lease_seconds)):
            return None
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

    async def _change(self, change: Callable[..., T], *args: Any) -> T:
        """`change(conn, *args)` in one transaction on the writer thread."""
        return await self._db.write(lambda conn: transaction(conn, lambda c: change(c, *args)))

    async def add_instance(self, store_id: int, record: InstanceRecord, blob_name: str,
                           blob_size: int, sha256: str) -> AddOutcome:
        return await self._db.write_grouped(
            lambda conn: _add(conn, store_id, record, blob_name, blob_size, sha256))

    async def replace_instance(self, store_id: int, record: InstanceRecord, blob_name: str,
                               blob_size: int, sha256: str) -> tuple[AddOutcome, str | None]:
        try:
            return await self._db.write_grouped(
                lambda conn: _replace(conn, store_id, record, blob_name, blob_size, sha256))
        except _Undone as undone:
            return undone.outcome, None

    async def search(self, store_id: int, query: Query) -> SearchResult:
        sql, params = build_search(SQLITE, store_id, query)

        def run(conn: sqlite3.Connection) -> SearchResult:
            rows = conn.execute(sql, params).fetchall()
            return SearchResult([search_row(r) for r in rows[:query.limit]],
                                len(rows) > query.limit)
        return await self._db.read(run)

    async def locate(self, store_id: int, study: str, series: str | None = None,
                     instance: str | None = None) -> list[InstanceLocation]:
        params = SQLITE.params()
        where = scope(params, store_id, study, series, instance)

        def run(conn: sqlite3.Connection) -> list[InstanceLocation]:
            rows = conn.execute(
                "SELECT st.study_uid, se.series_uid, i.sop_uid, i.sop_class_uid, "
                "i.transfer_syntax_uid, i.blob_name, i.blob_size, i.frames, i.bulk, "
                "i.storage_class "
                f"FROM {SCOPE_FROM} WHERE {where} {SCOPE_ORDER}", params.values).fetchall()
            return [InstanceLocation(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7].encode(),
                                     r[8].encode(), r[9]) for r in rows]
        return await self._db.read(run)

    async def metadata(self, store_id: int, study: str, series: str | None = None,
                       instance: str | None = None) -> list[InstanceMetadata]:
        params = SQLITE.params()
        where = scope(params, store_id, study, series, instance)

        def run(conn: sqlite3.Connection) -> list[InstanceMetadata]:
            rows = conn.execute(f"SELECT st.study_uid, se.series_uid, i.sop_uid, "
                                f"CAST(i.metadata AS BLOB), i.blob_name FROM {SCOPE_FROM} "
                                f"WHERE {where} {SCOPE_ORDER}", params.values)
            return list(map(InstanceMetadata._make, rows))
        return await self._db.read(run)

    async def delete(self, store_id: int, study: str, series: str | None = None,
                     instance: str | None = None) -> list[str] | None:
        params = SQLITE.params()
        where = scope(params, store_id, study, series, instance)

        def run(conn: sqlite3.Connection) -> list[str] | None:
            return transaction(conn, lambda c: _delete(c, where, params.values))
        return await self._db.write(run)

    async def metrics(self, store_id: int, study: str | None = None,
                      series: str | None = None) -> Metrics:
        where: list[str] = ["st.store_id = ?"]  # as in _scope
        params: list[object] = [store_id]
        for column, value in (("st.study_uid", study), ("se.series_uid", series)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)

        def run(conn: sqlite3.Connection) -> Metrics:
            row = conn.execute(
                "SELECT count(DISTINCT i.study_pk), count(DISTINCT i.series_pk), count(*), "
                "coalesce(sum(i.blob_size), 0), coalesce(sum(length(i.metadata) + "
                f"length(i.frames) + length(i.bulk)), 0) FROM {SCOPE_FROM} "
                f"WHERE {' AND '.join(where)}", params).fetchone()
            return Metrics(*row)
        return await self._db.read(run)

    async def referenced(self, blob_names: Sequence[str]) -> set[str]:
        def run(conn: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for start in range(0, len(blob_names), _MATCH_BATCH):
                batch = blob_names[start:start + _MATCH_BATCH]
                marks = ", ".join("?" * len(batch))
                found.update(r[0] for r in conn.execute(
                    f"SELECT blob_name FROM instances WHERE blob_name IN ({marks}) UNION "
                    f"SELECT blob_name FROM blob_removals WHERE blob_name IN ({marks})",
                    [*batch, *batch]))
            return found
        return await self._db.read(run)

    async def check(self) -> None:
        if not self._path.is_file():  # the connections are open: the file is what can go
            raise FileNotFoundError(f"{self._path} is missing")

    async def stored_sha256(self, store_id: int, sop_uid: str) -> str | None:
        def run(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT sha256 FROM instances WHERE store_id = ? AND "
                               "sop_uid = ?", (store_id, sop_uid)).fetchone()
            return None if row is None else str(row[0])
        return await self._db.read(run)

    async def instances_after(self, after: int, limit: int,
                              store_id: int | None = None) -> list[StoredInstance]:
        of_store = "" if store_id is None else f" AND i.store_id = {int(store_id)}"

        def run(conn: sqlite3.Connection) -> list[StoredInstance]:
            return list(map(StoredInstance._make, conn.execute(
                f"SELECT i.pk, st.store_id, st.study_uid, se.series_uid, i.sop_uid, "
                f"i.blob_name, i.blob_size, i.sha256 FROM {SCOPE_FROM} WHERE i.pk > ?"
                f"{of_store} ORDER BY i.pk LIMIT ?", (after, limit))))
        return await self._db.read(run)

    async def parents_astray(self, repair: bool) -> tuple[int, int]:
        series_wrong = ("FROM series WHERE n_instances != (SELECT count(*) FROM instances "
                        "WHERE series_pk = series.pk) OR n_instances = 0")
        studies_wrong = (
            "FROM studies WHERE n_instances != (SELECT count(*) FROM instances WHERE "
            "study_pk = studies.pk) OR n_series != (SELECT count(*) FROM series WHERE "
            "study_pk = studies.pk) OR n_instances = 0")

        def run(conn: sqlite3.Connection) -> tuple[int, int]:
            studies = conn.execute(f"SELECT count(*) {studies_wrong}").fetchone()[0]
            series = conn.execute(f"SELECT count(*) {series_wrong}").fetchone()[0]
            if repair:  # series first: a study counts its series
                conn.execute(f"UPDATE series SET n_instances = (SELECT count(*) FROM "
                             f"instances WHERE series_pk = series.pk) WHERE pk IN "
                             f"(SELECT pk {series_wrong})")
                conn.execute("DELETE FROM series WHERE n_instances = 0")
                conn.execute(f"UPDATE studies SET n_instances = (SELECT count(*) FROM "
                             f"instances WHERE study_pk = studies.pk), n_series = (SELECT "
                             f"count(*) FROM series WHERE study_pk = studies.pk) WHERE pk IN "
                             f"(SELECT pk {studies_wrong})")
                conn.execute("DELETE FROM studies WHERE n_instances = 0")
            return studies, series
        if repair:
            return await self._db.write(lambda conn: transaction(conn, run))
        return await self._db.read(run)

    async def due_removals(self, older_than: float, limit: int) -> list[str]:
        def run(conn: sqlite3.Connection) -> list[str]:
            return [r[0] for r in conn.execute(
                "SELECT blob_name FROM blob_removals WHERE queued_at < ? ORDER BY queued_at "
                "LIMIT ?", (time.time() - older_than, limit))]
        return await self._db.read(run)

    async def queued_removals(self) -> int:
        return await self._db.read(
            lambda conn: int(conn.execute("SELECT count(*) FROM blob_removals").fetchone()[0]))

    async def removals_done(self, blob_names: Sequence[str]) -> None:
        names = list(blob_names)

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM blob_removals WHERE blob_name = ?",
                             [(name,) for name in names])
        await self._db.write_grouped(run)

    async def on_resources_changed(self, callback: Callable[[], None]) -> None:
        """SQLite cannot say: its processes share one machine, and their caches' time
        limits keep them within seconds of each other."""

    async def close(self) -> None:
        self._db.close()


def _subset(attributes: dict[str, Any], tags: frozenset[int]) -> str:
    return orjson.dumps({k: v for k, v in attributes.items() if int(k, 16) in tags}).decode()


def _add(conn: sqlite3.Connection, store_id: int, record: InstanceRecord, blob_name: str,
         blob_size: int, sha256: str) -> AddOutcome:
    existing = conn.execute("SELECT sha256 FROM instances WHERE store_id = ? AND sop_uid = ?",
                            (store_id, record.sop_uid)).fetchone()
    if existing is not None:
        return AddOutcome.DUPLICATE if existing[0] == sha256 else AddOutcome.CONFLICT
    attrs = record.attributes
    study = conn.execute("SELECT pk FROM studies WHERE store_id = ? AND study_uid = ?",
                         (store_id, record.study_uid)).fetchone()
    series = conn.execute("SELECT pk, study_pk FROM series WHERE store_id = ? AND series_uid = ?",
                          (store_id, record.series_uid)).fetchone()
    if series is not None and (study is None or series[1] != study[0]):
        return AddOutcome.SERIES_CONFLICT  # before any row is written: nothing changes
    if study is None:
        values = {column: record.study_uid if t == 0x0020000D else column_value(attrs, t)
                  for t, column in _STUDY_COLUMNS}
        values.update((column, casefold(column_value(attrs, t))) for t, column in _FOLDED)
        study = conn.execute(
            f"INSERT INTO studies (store_id, attrs, {', '.join(values)}) VALUES (?, ?"
            f"{', ?' * len(values)}) RETURNING pk",
            [store_id, _subset(attrs, STUDY_TAGS), *values.values()]).fetchone()
    if series is None:
        names = ", ".join(c for _, c in _SERIES_COLUMNS)
        series = conn.execute(
            f"INSERT INTO series (study_pk, store_id, attrs, {names}) VALUES (?, ?, ?"
            f"{', ?' * len(_SERIES_COLUMNS)}) RETURNING pk, study_pk",
            [study[0], store_id, _subset(attrs, SERIES_TAGS),
             *(record.series_uid if t == 0x0020000E else column_value(attrs, t)
               for t, _ in _SERIES_COLUMNS)]).fetchone()
        conn.execute("UPDATE studies SET n_series = n_series + 1 WHERE pk = ?", (study[0],))
    frames = orjson.dumps([[[s.offset, s.length] for s in f] for f in record.frames]).decode()
    bulk = orjson.dumps({p: [s.offset, s.length] for p, s in record.bulk.items()}).decode()
    conn.execute(
        "INSERT INTO instances (series_pk, study_pk, store_id, sop_uid, sop_class_uid, "
        "instance_number, transfer_syntax_uid, blob_name, blob_size, sha256, metadata, frames, "
        "bulk, stored_at, storage_class) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (series[0], study[0], store_id, record.sop_uid, record.sop_class_uid,
         column_value(attrs, 0x00200013), record.transfer_syntax_uid, blob_name, blob_size,
         sha256, record.metadata.decode(), frames, bulk, datetime.now(UTC).isoformat(),
         record.storage_class))
    conn.execute("UPDATE series SET n_instances = n_instances + 1 WHERE pk = ?", (series[0],))
    conn.execute("UPDATE studies SET n_instances = n_instances + 1 WHERE pk = ?", (study[0],))
    return AddOutcome.STORED


class _Undone(Exception):
    """A replacement whose new row was refused: the transaction is rolled back."""

    def __init__(self, outcome: AddOutcome) -> None:
        super().__init__(outcome.value)
        self.outcome = outcome


def _replace(conn: sqlite3.Connection, store_id: int, record: InstanceRecord, blob_name: str,
             blob_size: int, sha256: str) -> tuple[AddOutcome, str | None]:
    existing = conn.execute("SELECT sha256, blob_name FROM instances WHERE store_id = ? AND "
                            "sop_uid = ?", (store_id, record.sop_uid)).fetchone()
    if existing is None or existing[0] == sha256:
        return _add(conn, store_id, record, blob_name, blob_size, sha256), None
    _delete(conn, "i.store_id = ? AND i.sop_uid = ?", [store_id, record.sop_uid])
    outcome = _add(conn, store_id, record, blob_name, blob_size, sha256)
    if outcome is not AddOutcome.STORED:
        raise _Undone(outcome)  # rolls back the delete and its queued removal too
    return outcome, existing[1]


def _delete(conn: sqlite3.Connection, where: str, params: list[object]) -> list[str] | None:
    rows = conn.execute(f"SELECT i.pk, i.blob_name, i.series_pk, i.study_pk FROM {SCOPE_FROM} "
                        f"WHERE {where}", params).fetchall()
    if not rows:
        return None
    conn.executemany("DELETE FROM instances WHERE pk = ?", [(r[0],) for r in rows])
    for series_pk in {r[2] for r in rows}:
        conn.execute("UPDATE series SET n_instances = (SELECT count(*) FROM instances "
                     "WHERE series_pk = series.pk) WHERE pk = ?", (series_pk,))
    conn.execute("DELETE FROM series WHERE n_instances = 0 AND pk IN "
                 f"({', '.join('?' * len({r[2] for r in rows}))})", list({r[2] for r in rows}))
    for study_pk in {r[3] for r in rows}:
        conn.execute(
            "UPDATE studies SET n_instances = (SELECT count(*) FROM instances WHERE study_pk = ?),"
            " n_series = (SELECT count(*) FROM series WHERE study_pk = ?) WHERE pk = ?",
            (study_pk, study_pk, study_pk))
        conn.execute("DELETE FROM studies WHERE pk = ? AND n_instances = 0", (study_pk,))
    names = [r[1] for r in rows]
    resources.queue_removals(conn, names)
    return names
