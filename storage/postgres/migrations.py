"""Named, ordered schema migrations of the PostgreSQL index, applied by one process at a
time: whoever holds the advisory lock applies what is missing, in one transaction; the
others wait for it, then find nothing left to do.

The tables are SQLite's (storage/index/migrations.py) as they stand after its migrations,
with every text column compared byte by byte (the "C" collation, as SQLite compares), so
that ordering, ranges and LIKE prefixes (which can then use the indexes) agree."""

import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import cache

import asyncpg

log = logging.getLogger(__name__)
# pg_advisory_xact_lock's key for migrations: ASCII "pacs-mig", as one bigint.
MIGRATION_LOCK = int.from_bytes(b"pacs-mig", "big")

_T = 'text COLLATE "C"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@cache
def casefold_function(icu: bool) -> str:
    """CREATE FUNCTION pacs_casefold(text): Python's str.casefold in SQL, from this Python's
    Unicode tables (PostgreSQL's lower() depends on the server's locale and folds neither
    ß nor ς). ASCII text, the common case, is folded by lower() under "C". Other text is
    lowered by ICU, whose lower() is Unicode's default case mapping as str.lower is, and
    then, if it holds any of the few hundred characters that folding maps further, mapped
    by replace() and translate(): 0.3 µs per call for ASCII, 1 µs for most other names, 20
    µs for those few. Without ICU, lower() under "C" lowers only ASCII, and every other
    character's fold is mapped: 90 µs a name."""
    folds = {char: folded for char in map(chr, range(0x80, sys.maxunicode + 1))
             if not 0xD800 <= ord(char) <= 0xDFFF and (folded := char.casefold()) != char
             and (not icu or char.lower() == char)}
    lowered = f'lower(t COLLATE "{"und-x-icu" if icu else "C"}")'
    mapped = lowered
    for char, folded in folds.items():
        if len(folded) > 1:
            mapped = f"replace({mapped}, {_literal(char)}, {_literal(folded)})"
    single = {char: folded for char, folded in folds.items() if len(folded) == 1}
    mapped = (f"translate({mapped}, {_literal(''.join(single))}, "
              f"{_literal(''.join(single.values()))})")
    # (not STRICT, so that the planner can inline it)
    return ("CREATE FUNCTION pacs_casefold(t text) RETURNS text LANGUAGE sql IMMUTABLE "
            'PARALLEL SAFE AS $$ SELECT CASE WHEN octet_length(t) = length(t) THEN lower(t '
            f'COLLATE "C") WHEN {lowered} !~ {_literal("[" + "".join(folds) + "]")} '
            f'THEN {lowered} COLLATE "C" ELSE {mapped} COLLATE "C" END $$')


_TABLES = f"""
CREATE TABLE datasets (
  name {_T} PRIMARY KEY,
  time_zone {_T} NOT NULL DEFAULT '',
  created_at {_T} NOT NULL
);
CREATE TABLE stores (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name {_T} NOT NULL UNIQUE,
  profile {_T} NOT NULL,
  config text NOT NULL DEFAULT '{{}}',
  deleted boolean NOT NULL DEFAULT false
);
CREATE TABLE studies (
  pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  store_id bigint NOT NULL REFERENCES stores (id),
  study_uid {_T} NOT NULL,
  patient_name {_T}, patient_id {_T}, patient_birth_date {_T}, patient_sex {_T},
  study_date {_T}, study_time {_T}, accession_number {_T}, referring_physician_name {_T},
  study_id {_T}, study_description {_T},
  patient_name_folded {_T}, referring_physician_name_folded {_T},
  attrs text NOT NULL,
  n_series integer NOT NULL DEFAULT 0,
  n_instances integer NOT NULL DEFAULT 0,
  UNIQUE (store_id, study_uid)
);
CREATE TABLE series (
  pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  study_pk bigint NOT NULL REFERENCES studies (pk),
  store_id bigint NOT NULL REFERENCES stores (id),
  series_uid {_T} NOT NULL,
  modality {_T}, series_number numeric, series_description {_T},
  series_date {_T}, series_time {_T}, performed_start_date {_T}, performed_start_time {_T},
  attrs text NOT NULL,
  n_instances integer NOT NULL DEFAULT 0,
  UNIQUE (store_id, series_uid)
);
CREATE TABLE instances (
  pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  series_pk bigint NOT NULL REFERENCES series (pk),
  study_pk bigint NOT NULL REFERENCES studies (pk),
  store_id bigint NOT NULL REFERENCES stores (id),
  sop_uid {_T} NOT NULL,
  sop_class_uid {_T} NOT NULL,
  instance_number numeric,
  transfer_syntax_uid {_T} NOT NULL,
  blob_name {_T} NOT NULL UNIQUE,
  blob_size bigint NOT NULL,
  sha256 {_T} NOT NULL,
  metadata text NOT NULL,
  frames text NOT NULL,
  bulk text NOT NULL,
  stored_at {_T} NOT NULL,
  storage_class {_T} NOT NULL DEFAULT 'STANDARD',
  UNIQUE (store_id, sop_uid)
);
-- Chosen from the plans of the searches and retrieves (EXPLAIN ANALYZE, a few thousand
-- studies): a store's studies in pk order, the order of every search's pages; the matching
-- keys a study list filters on (LIKE prefixes use them: the columns compare under "C");
-- a study's series and instances in the order searches and retrieves list them, which the
-- computed attributes (ModalitiesInStudy, SOPClassesInStudy) and the recounts also read.
CREATE INDEX studies_store ON studies (store_id, pk);
CREATE INDEX studies_patient_name_folded ON studies (store_id, patient_name_folded);
CREATE INDEX studies_patient_id ON studies (store_id, patient_id);
CREATE INDEX studies_study_date ON studies (store_id, study_date);
CREATE INDEX studies_accession_number ON studies (store_id, accession_number);
CREATE INDEX series_study ON series (study_pk, series_number NULLS FIRST, pk);
CREATE INDEX series_modality ON series (store_id, modality);
CREATE INDEX instances_study_order ON instances
  (study_pk, series_pk, instance_number NULLS FIRST, pk);
CREATE INDEX instances_series ON instances (series_pk, instance_number NULLS FIRST, pk);
CREATE INDEX instances_study_class ON instances (study_pk, sop_class_uid);
CREATE TABLE operations (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  dataset {_T} NOT NULL,
  body text NOT NULL
);
CREATE INDEX operations_dataset ON operations (dataset, id);
CREATE TABLE policies (resource {_T} PRIMARY KEY, body text NOT NULL);
-- Blobs of deleted or replaced instances, removed after a grace period; a replica that
-- claims some for removal names itself, and the others leave them to it for a while.
CREATE TABLE blob_removals (
  blob_name {_T} PRIMARY KEY,
  queued_at double precision NOT NULL,
  claimed_by {_T},
  claimed_at double precision
);
CREATE INDEX blob_removals_queued ON blob_removals (queued_at);
"""


# SQLSTATE of an instance pacs_add_instance refused after it had written rows: raising it
# rolls the statement back, and the message is the outcome (storage.rows.AddOutcome).
REFUSED = "PA001"

# The hot path of a store in one round trip: the rows of the study, series and instance
# (their columns as JSON objects named as the columns), their stored attributes as text.
# Every change of a study's instances locks the study's row first (the upsert here).
_ADD_INSTANCE = f"""
CREATE FUNCTION pacs_add_instance(p_store bigint, p_study jsonb, p_study_attrs text,
                                  p_series jsonb, p_series_attrs text, p_instance jsonb,
                                  p_metadata text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st studies := jsonb_populate_record(NULL::studies, p_study);
  se series := jsonb_populate_record(NULL::series, p_series);
  i instances := jsonb_populate_record(NULL::instances, p_instance);
  stored text;
  known series;
BEGIN
  SELECT sha256 INTO stored FROM instances WHERE store_id = p_store AND sop_uid = i.sop_uid;
  IF FOUND THEN
    RETURN CASE WHEN stored = i.sha256 THEN 'duplicate' ELSE 'conflict' END;
  END IF;
  INSERT INTO studies (store_id, study_uid, patient_name, patient_id, patient_birth_date,
      patient_sex, study_date, study_time, accession_number, referring_physician_name,
      study_id, study_description, patient_name_folded, referring_physician_name_folded,
      attrs, n_instances)
    VALUES (p_store, st.study_uid, st.patient_name, st.patient_id, st.patient_birth_date,
      st.patient_sex, st.study_date, st.study_time, st.accession_number,
      st.referring_physician_name, st.study_id, st.study_description, st.patient_name_folded,
      st.referring_physician_name_folded, p_study_attrs, 1)
    ON CONFLICT (store_id, study_uid) DO UPDATE SET n_instances = studies.n_instances + 1
    RETURNING pk INTO st.pk;
  SELECT * INTO known FROM series WHERE store_id = p_store AND series_uid = se.series_uid;
  IF NOT FOUND THEN
    INSERT INTO series (study_pk, store_id, series_uid, modality, series_number,
        series_description, series_date, series_time, performed_start_date,
        performed_start_time, attrs, n_instances)
      VALUES (st.pk, p_store, se.series_uid, se.modality, se.series_number,
        se.series_description, se.series_date, se.series_time, se.performed_start_date,
        se.performed_start_time, p_series_attrs, 1)
      ON CONFLICT (store_id, series_uid) DO NOTHING RETURNING pk INTO se.pk;
    IF NOT FOUND THEN  -- just stored under another study (this one is locked)
      RAISE EXCEPTION 'series_conflict' USING ERRCODE = '{REFUSED}';
    END IF;
    UPDATE studies SET n_series = n_series + 1 WHERE pk = st.pk;
  ELSIF known.study_pk <> st.pk THEN
    RAISE EXCEPTION 'series_conflict' USING ERRCODE = '{REFUSED}';
  ELSE
    se.pk := known.pk;
    UPDATE series SET n_instances = n_instances + 1 WHERE pk = se.pk;
  END IF;
  INSERT INTO instances (series_pk, study_pk, store_id, sop_uid, sop_class_uid,
      instance_number, transfer_syntax_uid, blob_name, blob_size, sha256, metadata, frames,
      bulk, stored_at, storage_class)
    VALUES (se.pk, st.pk, p_store, i.sop_uid, i.sop_class_uid, i.instance_number,
      i.transfer_syntax_uid, i.blob_name, i.blob_size, i.sha256, p_metadata, i.frames,
      i.bulk, i.stored_at, i.storage_class)
    ON CONFLICT (store_id, sop_uid) DO NOTHING;
  IF NOT FOUND THEN  -- the same instance, stored at the same time: its key settles it
    SELECT sha256 INTO stored FROM instances WHERE store_id = p_store AND sop_uid = i.sop_uid;
    RAISE EXCEPTION '%', CASE WHEN stored = i.sha256 THEN 'duplicate' ELSE 'conflict' END
      USING ERRCODE = '{REFUSED}';
  END IF;
  RETURN 'stored';
END $$
"""


async def _initial(conn: asyncpg.Connection) -> None:
    await conn.execute(_TABLES)
    await conn.execute(_ADD_INSTANCE)
    icu = await conn.fetchval("SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu'")
    await conn.execute(casefold_function(icu is not None))


RESOURCES_CHANNEL = "pacs_resources"  # notified, at commit, of changed datasets, stores, policies


async def _notify_resource_changes(conn: asyncpg.Connection) -> None:
    """Triggers that tell every listening replica a dataset, store or policy changed, so
    their caches of those read them again at once."""
    await conn.execute(f"""
CREATE FUNCTION pacs_resources_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('{RESOURCES_CHANNEL}', TG_TABLE_NAME);
  RETURN NULL;
END $$""")
    for table in ("datasets", "stores", "policies"):
        await conn.execute(f"CREATE TRIGGER {table}_changed AFTER INSERT OR UPDATE OR DELETE "
                           f"ON {table} FOR EACH STATEMENT "
                           "EXECUTE FUNCTION pacs_resources_changed()")


async def _operation_jobs(conn: asyncpg.Connection) -> None:
    """Operations whose work runs after the request that started it: the job (JSON), who
    holds it and since when (the database's clock; a holder that dies stops renewing, and
    another replica takes over), and whether a cancel was asked for."""
    await conn.execute(f"""
ALTER TABLE operations ADD COLUMN job text;
ALTER TABLE operations ADD COLUMN claimed_by {_T};
ALTER TABLE operations ADD COLUMN claimed_at double precision;
ALTER TABLE operations ADD COLUMN claims integer NOT NULL DEFAULT 0;
ALTER TABLE operations ADD COLUMN cancel boolean NOT NULL DEFAULT false;
CREATE INDEX operations_jobs ON operations (id) WHERE job IS NOT NULL;""")


# What OHIF's study list filters as `*typed text*` (../shared/specs/ohif-as-client.md),
# case folded as the searches fold it.
TRIGRAM_INDEXED = {"patient_name": "patient_name_folded",
                   "patient_id": "pacs_casefold(patient_id)",
                   "accession_number": "pacs_casefold(accession_number)",
                   "study_description": "pacs_casefold(study_description)"}


async def _trigram_indexes(conn: asyncpg.Connection) -> None:
    """Trigram indexes (pg_trgm, shipped with PostgreSQL) for the study list's `*text*`
    filters: chosen at 10 million instances, where AccessionNumber=*1234* folded all
    80,000 studies' numbers to find 8 (51 ms p95; 8.6 ms with the index, benchmarks/README).
    Where pg_trgm cannot be installed, the searches work as before, unindexed."""
    schema = await conn.fetchval(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'")
    if schema is None:
        try:
            async with conn.transaction():  # a savepoint: a refusal leaves the rest intact
                await conn.execute("CREATE EXTENSION pg_trgm")
        except (asyncpg.InsufficientPrivilegeError, asyncpg.UndefinedFileError,
                asyncpg.FeatureNotSupportedError) as exc:
            log.warning("no trigram indexes (pg_trgm: %s): *text* searches of the study "
                        "list read every study", exc)
            return
        schema = await conn.fetchval("SELECT extnamespace::regnamespace::text FROM "
                                     "pg_extension WHERE extname = 'pg_trgm'")
    for name, expression in TRIGRAM_INDEXED.items():
        await conn.execute(f"CREATE INDEX studies_{name}_trigrams ON studies USING gin "
                           f"(({expression}) {schema}.gin_trgm_ops)")


MIGRATIONS: tuple[tuple[str, Callable[[asyncpg.Connection], Awaitable[None]]], ...] = (
    ("0001_initial", _initial),
    ("0002_notify_resource_changes", _notify_resource_changes),
    ("0003_operation_jobs", _operation_jobs),
    ("0004_trigram_indexes", _trigram_indexes),
)


async def newer_migrations(conn: asyncpg.Connection) -> list[str]:
    """The migrations recorded that this version does not know; none without a schema."""
    if await conn.fetchval("SELECT to_regclass('migrations')") is None:
        return []
    known = {name for name, _ in MIGRATIONS}
    return [row[0] for row in await conn.fetch("SELECT name FROM migrations ORDER BY name")
            if row[0] not in known]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply the migrations not yet recorded, in the caller's transaction and under the
    advisory lock it holds until its end; their names."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
    await conn.execute("CREATE TABLE IF NOT EXISTS migrations "
                       "(name text PRIMARY KEY, applied_at text NOT NULL)")
    done = {row[0] for row in await conn.fetch("SELECT name FROM migrations")}
    applied = []
    for name, step in MIGRATIONS:
        if name in done:
            continue
        await step(conn)
        await conn.execute("INSERT INTO migrations VALUES ($1, $2)", name,
                           datetime.now(UTC).isoformat())
        applied.append(name)
    return applied
