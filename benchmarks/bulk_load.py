"""Bulk loader of the scale benchmark's archive into a PostgreSQL index, for sizes the real
ingest would take hours to reach (10 million instances: about 5 h at 590 instances/s):

    python -m benchmarks.bulk_load --index postgresql://… --instances 10_000_000
                                   [--processes 2] [--chunk 80] [--verify-every 2000]

The studies, series and instances are `benchmarks.scale_data`'s plan (the first N instances,
so `python -m benchmarks.scale --no-fill` measures them), each row made by the store path's
own code: the schema by the index's migrations; each instance encoded by `SeriesEncoder`
(its size and SHA-256 are those of the bytes STOW would keep); the first of each series read
by `pacs.dicom.ingest.read_instance`, and the others derived from it (the four elements of
an instance's own, read from its bytes by `raw_json` as ingest reads them, and its Pixel Data
span), one in `--verify-every` read whole and compared; and the columns of every row are
those `storage.postgres.postgres_index._add` sends to `pacs_add_instance`, captured rather
than sent. The rows then go in with COPY, from `--processes` processes, into tables whose
instance indexes are dropped meanwhile and built again after (with the definitions the
migrations gave them), foreign keys unchecked during the COPY (`session_replication_role`,
so the DSN's user must be a superuser); VACUUM (ANALYZE) last. No blob is written: every
blob name is unique, but no file holds it (searches and metadata are served from the index
alone; retrieving an instance, a frame or a rendering answers that its blob is lost)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import multiprocessing
import struct
import sys
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import orjson

from benchmarks.scale_data import (
    MEDIA_SOP_UID,
    OWN_TAGS,
    STUDY_SIZE,
    SeriesEncoder,
    StudyPlan,
    study_counts,
    study_plan,
)
from pacs.dicom.bulk_data import BulkDataDefinition
from pacs.dicom.ingest import read_instance
from pacs.dicom.json_values import ENCODINGS, raw_json
from pacs.dicom.pydicom_setup import configure_pydicom
from pacs.service.profiles import FULL, PROFILES
from pacs.settings import Settings
from storage.backends import Placement, open_index
from storage.postgres.postgres_index import _add
from storage.rows import InstanceRecord, Span

T = TypeVar("T")
TABLES = ("studies", "series", "instances")
PIXEL_DATA = 0x7FE00010
VARYING = (MEDIA_SOP_UID, *OWN_TAGS)  # what differs between the instances of a series
_LONG_VRS = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UT", b"UN", b"UC",
                       b"UR", b"SV", b"UV"})  # explicit VR with a 4-byte length (PS3.5 7.1.2)
# Columns that pacs_add_instance (storage/postgres/migrations.py) fills from its own
# arguments and counts rather than from the row's JSON.
_OWN_COLUMNS = {
    "studies": {"pk", "store_id", "attrs", "n_series", "n_instances"},
    "series": {"pk", "study_pk", "store_id", "attrs", "n_instances"},
    "instances": {"pk", "series_pk", "study_pk", "store_id", "metadata"},
}
_CONVERT: dict[str, Any] = {"text": str, "numeric": lambda v: Decimal(str(v)), "bigint": int,
                            "integer": int, "double precision": float, "boolean": bool}


@dataclass(frozen=True)
class Target:
    """Where rows go, and what each worker needs to make them."""

    dsn: str
    store_id: int
    bulk_data: BulkDataDefinition
    columns: dict[str, list[tuple[str, str]]]  # table → (column, data type), in table order
    bases: tuple[int, int, int]  # the highest pk of studies, series, instances before
    verify_every: int  # 1: every instance read whole and compared with its derived record


@dataclass(frozen=True)
class Rows:
    """COPY records of some studies."""

    studies: list[tuple[Any, ...]]
    series: list[tuple[Any, ...]]
    instances: list[tuple[Any, ...]]
    verified: int


class _Captured:
    """Stands for the connection `_add` writes through: keeps the arguments it would pass to
    pacs_add_instance, and answers that the instance was stored."""

    args: tuple[Any, ...] = ()

    async def fetchval(self, sql: str, *args: Any) -> str:
        self.args = args
        return "stored"


def _finish(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (here: `_add` on `_Captured`) to its result."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise RuntimeError("the coroutine suspended")


def _elements(data: bytes) -> dict[int, tuple[str, int, int]]:
    """Tag → (VR, value offset, value length) of a Part 10 file in Explicit VR Little Endian
    with defined lengths only (what `SeriesEncoder` writes)."""
    found: dict[int, tuple[str, int, int]] = {}
    pos, end = 132, len(data)
    while pos < end:
        group, element = struct.unpack_from("<HH", data, pos)
        vr = data[pos + 4:pos + 6]
        if vr in _LONG_VRS:
            (length,), header = struct.unpack_from("<L", data, pos + 8), 12
        else:
            (length,), header = struct.unpack_from("<H", data, pos + 6), 8
        found[group << 16 | element] = (vr.decode("ascii"), pos + header, length)
        pos += header + length
    return found


def _derived(template: InstanceRecord, data: bytes, encoding: str) -> InstanceRecord:
    """The record `read_instance` gives for `data`, another instance of `template`'s series:
    its own elements as ingest converts them (`raw_json`), its spans moved as its Pixel Data
    moved."""
    found = _elements(data)
    attributes = dict(template.attributes)
    for tag in VARYING:
        vr, offset, length = found[tag]
        attributes[f"{tag:08X}"] = raw_json(vr, data[offset:offset + length], encoding, True)
    shift = found[PIXEL_DATA][1] - template.bulk[f"{PIXEL_DATA:08X}"].offset
    sop = attributes["00080018"]["Value"][0]
    return replace(
        template, sop_uid=sop, attributes=attributes, metadata=orjson.dumps(attributes),
        bulk={p: Span(s.offset + shift, s.length) for p, s in template.bulk.items()},
        frames=tuple(tuple(Span(s.offset + shift, s.length) for s in f)
                     for f in template.frames))


def _row(target: Target, table: str, fields: dict[str, Any],
         own: dict[str, Any]) -> tuple[Any, ...]:
    """A COPY record of `table`: `own` columns as given, the others from `fields` (the JSON
    object pacs_add_instance reads with jsonb_populate_record) in the column's type."""
    return tuple(own[name] if name in own else
                 None if fields.get(name) is None else _CONVERT[kind](fields[name])
                 for name, kind in target.columns[table])


def _blob_name(sop_uid: str) -> str:
    """A unique blob name, as a blob store hands out (32 hex digits), that names no file."""
    return uuid.uuid5(uuid.NAMESPACE_OID, sop_uid).hex


def study_rows(target: Target, study: StudyPlan, count: int) -> Rows:
    """The rows of the first `count` instances of `study`, as the store path writes them."""
    k = study.index
    study_pk = target.bases[0] + k + 1
    series_pk = target.bases[1] + len(study.series) * k
    instance_pk = target.bases[2] + STUDY_SIZE * k
    studies: list[tuple[Any, ...]] = []
    series_rows: list[tuple[Any, ...]] = []
    instances: list[tuple[Any, ...]] = []
    left, verified = count, 0
    for series in study.series:
        size = min(series.size, left)
        if size <= 0:
            break
        left -= size
        series_pk += 1
        encoder = SeriesEncoder(study, series)
        template: InstanceRecord | None = None
        encoding = ""
        for number in range(1, size + 1):
            data = encoder.encode(number)
            instance_pk += 1
            if template is None:
                record = template = read_instance(io.BytesIO(data), target.bulk_data)
                encoding = ENCODINGS["\\".join(template.attributes["00080005"]["Value"])]
            else:
                record = _derived(template, data, encoding)
                if instance_pk % target.verify_every == 0:
                    read = read_instance(io.BytesIO(data), target.bulk_data)
                    if read != record:
                        raise AssertionError(f"instance {record.sop_uid}: the derived "
                                             "record differs from the one ingest reads")
                    verified += 1
            captured = _Captured()
            _finish(_add(captured, target.store_id, record,
                         _blob_name(record.sop_uid), len(data),
                         hashlib.sha256(data).hexdigest()))
            _, study_json, study_attrs, series_json, series_attrs, fields, metadata = \
                captured.args
            if not studies:
                studies.append(_row(target, "studies", orjson.loads(study_json), {
                    "pk": study_pk, "store_id": target.store_id, "attrs": study_attrs,
                    "n_series": sum(1 for _ in _sizes(study, count)), "n_instances": count}))
            if number == 1:
                series_rows.append(_row(target, "series", orjson.loads(series_json), {
                    "pk": series_pk, "study_pk": study_pk, "store_id": target.store_id,
                    "attrs": series_attrs, "n_instances": size}))
            instances.append(_row(target, "instances", orjson.loads(fields), {
                "pk": instance_pk, "series_pk": series_pk, "study_pk": study_pk,
                "store_id": target.store_id, "metadata": metadata}))
    return Rows(studies, series_rows, instances, verified)


def _sizes(study: StudyPlan, count: int) -> Iterator[int]:
    """Instances in each series of `study` that its first `count` fill."""
    for series in study.series:
        if count <= 0:
            return
        yield min(series.size, count)
        count -= series.size


def load_chunk(target: Target, work: list[tuple[int, int]]) -> tuple[int, int]:
    """Make and COPY the rows of `work` ((plan index, instances) per study); the instances
    loaded and how many were verified."""
    parts = [study_rows(target, study_plan(index), count) for index, count in work]
    rows = Rows([r for p in parts for r in p.studies], [r for p in parts for r in p.series],
                [r for p in parts for r in p.instances], sum(p.verified for p in parts))
    asyncio.run(_copy(target, rows))
    return len(rows.instances), rows.verified


async def _copy(target: Target, rows: Rows) -> None:
    conn = await asyncpg.connect(target.dsn)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            for table, records in zip(TABLES, (rows.studies, rows.series, rows.instances),
                                      strict=True):
                await conn.copy_records_to_table(
                    table, records=records, columns=[c for c, _ in target.columns[table]])
    finally:
        await conn.close()


def _worker_init() -> None:
    configure_pydicom()


async def prepare(dsn: str, verify_every: int) -> Target:
    """Migrate the index as the server does, make sure of the default store, and refuse an
    index that already holds studies in it."""
    index = open_index(Placement(Path("."), dsn))
    try:
        await index.migrate()
        store = await index.ensure_store(Settings().default_store, FULL.name)
    finally:
        await index.close()
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT count(*) FROM studies WHERE store_id = $1", store.id):
            raise SystemExit("the default store holds studies already: load into an empty one")
        bases = [await conn.fetchval(f"SELECT coalesce(max(pk), 0) FROM {table}")
                 for table in TABLES]
        columns = {table: [(r[0], r[1]) for r in await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns WHERE "
            "table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            table)] for table in TABLES}
    finally:
        await conn.close()
    return Target(dsn, store.id, PROFILES[store.profile].bulk_data, columns,
                  (bases[0], bases[1], bases[2]), verify_every)


async def drop_indexes(dsn: str) -> list[str]:
    """Drop the instances table's indexes and unique constraints; the DDL that makes them
    again, as the migrations defined them."""
    conn = await asyncpg.connect(dsn)
    try:
        constraints = await conn.fetch(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = "
            "'instances'::regclass AND contype IN ('p', 'u') ORDER BY conname")
        indexes = await conn.fetch(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c "
            "ON c.oid = i.indexrelid WHERE i.indrelid = 'instances'::regclass AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) ORDER BY 1")
        again = [f'ALTER TABLE instances ADD CONSTRAINT "{name}" {definition}'
                 for name, definition in constraints] + [d for _, d in indexes]
        async with conn.transaction():
            for name, _ in indexes:
                await conn.execute(f'DROP INDEX "{name}"')
            for name, _ in constraints:
                await conn.execute(f'ALTER TABLE instances DROP CONSTRAINT "{name}"')
        return again
    finally:
        await conn.close()


async def finish(dsn: str, ddl: list[str]) -> None:
    """Build the indexes again, move the identity sequences past the loaded rows, VACUUM
    and ANALYZE."""
    conn = await asyncpg.connect(dsn)
    try:
        for statement in ddl:
            began = time.perf_counter()
            await conn.execute(statement)
            _say(f"  {statement[:90]}: {time.perf_counter() - began:.0f} s")
        for table in TABLES:
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'pk'), "
                               f"max(pk)) FROM {table} HAVING max(pk) IS NOT NULL")
        began = time.perf_counter()
        # VACUUM too: it sets the visibility map (index-only scans, which the computed
        # attributes use) and the hint bits once, rather than autovacuum during a measurement
        await conn.execute("VACUUM (ANALYZE) studies, series, instances")
        _say(f"  VACUUM (ANALYZE): {time.perf_counter() - began:.0f} s")
    finally:
        await conn.close()


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def chunks(instances: int, studies_per_chunk: int) -> list[list[tuple[int, int]]]:
    """The plan's first `instances` as work for the processes: (plan index, instances) per
    study, `studies_per_chunk` studies a chunk."""
    work = list(enumerate(study_counts(instances)))
    return [work[i:i + studies_per_chunk] for i in range(0, len(work), studies_per_chunk)]


def bulk_load(dsn: str, instances: int, processes: int = 2, studies_per_chunk: int = 80,
              verify_every: int = 2000) -> dict[str, float]:
    """Load the plan's first `instances` into the (empty) default store of the PostgreSQL
    index `dsn`; the figures of the load."""
    target = asyncio.run(prepare(dsn, verify_every))
    work = chunks(instances, studies_per_chunk)
    began = time.perf_counter()
    ddl = asyncio.run(drop_indexes(dsn))
    loaded = verified = 0
    try:
        context = multiprocessing.get_context("spawn")
        with context.Pool(processes, initializer=_worker_init) as pool:
            step = began
            for done, checked in pool.imap_unordered(_load_chunk, [(target, w) for w in work]):
                loaded, verified = loaded + done, verified + checked
                if (now := time.perf_counter()) - step > 30 or loaded == instances:
                    _say(f"  copied {loaded:,}/{instances:,}: {loaded / (now - began):.0f} "
                         f"instances/s ({verified:,} verified)")
                    step = now
        copied = time.perf_counter()
    finally:
        asyncio.run(finish(dsn, ddl))
    ended = time.perf_counter()
    return {"instances": loaded, "verified": verified, "copy_s": round(copied - began, 1),
            "indexes_and_analyze_s": round(ended - copied, 1),
            "seconds": round(ended - began, 1),
            "instances_per_s": round(loaded / (ended - began), 1)}


def _load_chunk(task: tuple[Target, list[tuple[int, int]]]) -> tuple[int, int]:
    return load_chunk(*task)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bulk_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, metavar="URL",
                        help="the PostgreSQL index (postgresql://…), migrated if need be")
    parser.add_argument("--instances", type=lambda t: int(t.replace("_", "").replace(",", "")),
                        required=True, help="the plan's first N instances")
    parser.add_argument("--processes", type=int, default=2, help="row-making processes")
    parser.add_argument("--chunk", type=int, default=80, help="studies per COPY")
    parser.add_argument("--verify-every", type=int, default=2000,
                        help="read one instance in so many whole, and compare")
    args = parser.parse_args(argv)
    figures = bulk_load(args.index, args.instances, args.processes, args.chunk,
                        args.verify_every)
    print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
