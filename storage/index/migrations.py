"""Named, ordered schema migrations, each applied once in its own transaction."""

import re
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

# A BulkDataURI as ingest wrote it before 0002: the DICOMweb path of the instance's bulk data.
_OLD_BULK_URI = re.compile(r'"BulkDataURI":"studies/[0-9.]+/series/[0-9.]+/instances/[0-9.]+'
                           r'/bulkdata/')


def _bulk_data_uris_as_paths(conn: sqlite3.Connection) -> None:
    """Stored metadata names each bulk data element by its attribute path only; answers add
    the URL of whichever route and host the client used."""
    conn.create_function("bulk_paths", 1,
                         lambda text: _OLD_BULK_URI.sub('"BulkDataURI":"', text),
                         deterministic=True)
    conn.execute("UPDATE instances SET metadata = bulk_paths(metadata) "
                 "WHERE metadata LIKE '%\"BulkDataURI\":\"studies/%'")
    for table in ("studies", "series"):
        conn.execute(f"UPDATE {table} SET attrs = bulk_paths(attrs) "
                     "WHERE attrs LIKE '%\"BulkDataURI\":\"studies/%'")


def _without_group_lengths(dataset: dict[str, Any]) -> dict[str, Any]:
    return {key: _items_without_group_lengths(element) for key, element in dataset.items()
            if not key.endswith("0000")}


def _items_without_group_lengths(element: Any) -> Any:
    if isinstance(element, dict) and element.get("vr") == "SQ" and element.get("Value"):
        return {**element, "Value": [_without_group_lengths(item) for item in element["Value"]]}
    return element


def _drop_group_lengths(conn: sqlite3.Connection) -> None:
    """Group length elements (gggg,0000) are not part of the DICOM JSON model (PS3.18 F.2);
    metadata stored before 0003 kept them."""
    conn.create_function(
        "without_group_lengths", 1,
        lambda text: orjson.dumps(_without_group_lengths(orjson.loads(text))).decode(),
        deterministic=True)
    conn.execute("UPDATE instances SET metadata = without_group_lengths(metadata) "
                 "WHERE metadata LIKE '%0000\":{%'")


Migration = str | Callable[[sqlite3.Connection], None]  # SQL statements, or a function

MIGRATIONS: tuple[tuple[str, Migration], ...] = (
    ("0001_initial", """
CREATE TABLE stores (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  profile TEXT NOT NULL
);
CREATE TABLE studies (
  pk INTEGER PRIMARY KEY,
  store_id INTEGER NOT NULL REFERENCES stores(id),
  study_uid TEXT NOT NULL,
  patient_name TEXT, patient_id TEXT, patient_birth_date TEXT, patient_sex TEXT,
  study_date TEXT, study_time TEXT, accession_number TEXT, referring_physician_name TEXT,
  study_id TEXT, study_description TEXT,
  attrs TEXT NOT NULL,
  n_series INTEGER NOT NULL DEFAULT 0,
  n_instances INTEGER NOT NULL DEFAULT 0,
  UNIQUE (store_id, study_uid)
);
CREATE INDEX studies_patient_name ON studies (store_id, patient_name COLLATE NOCASE);
CREATE INDEX studies_patient_id ON studies (store_id, patient_id);
CREATE INDEX studies_study_date ON studies (store_id, study_date);
CREATE INDEX studies_accession_number ON studies (store_id, accession_number);
CREATE TABLE series (
  pk INTEGER PRIMARY KEY,
  study_pk INTEGER NOT NULL REFERENCES studies(pk),
  store_id INTEGER NOT NULL REFERENCES stores(id),
  series_uid TEXT NOT NULL,
  modality TEXT, series_number INTEGER, series_description TEXT,
  series_date TEXT, series_time TEXT, performed_start_date TEXT, performed_start_time TEXT,
  attrs TEXT NOT NULL,
  n_instances INTEGER NOT NULL DEFAULT 0,
  UNIQUE (store_id, series_uid)
);
CREATE INDEX series_study ON series (study_pk, series_number);
CREATE INDEX series_modality ON series (store_id, modality);
CREATE TABLE instances (
  pk INTEGER PRIMARY KEY,
  series_pk INTEGER NOT NULL REFERENCES series(pk),
  study_pk INTEGER NOT NULL REFERENCES studies(pk),
  store_id INTEGER NOT NULL REFERENCES stores(id),
  sop_uid TEXT NOT NULL,
  sop_class_uid TEXT NOT NULL,
  instance_number INTEGER,
  transfer_syntax_uid TEXT NOT NULL,
  blob_name TEXT NOT NULL UNIQUE,
  blob_size INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  metadata TEXT NOT NULL,
  frames TEXT NOT NULL,
  bulk TEXT NOT NULL,
  stored_at TEXT NOT NULL,
  UNIQUE (store_id, sop_uid)
);
CREATE INDEX instances_series ON instances (series_pk, instance_number);
CREATE INDEX instances_study_class ON instances (study_pk, sop_class_uid);
"""),
    ("0002_bulk_data_uris_as_paths", _bulk_data_uris_as_paths),
    ("0003_no_group_lengths", _drop_group_lengths),
    ("0004_case_folded_names", """
ALTER TABLE studies ADD COLUMN patient_name_folded TEXT;
ALTER TABLE studies ADD COLUMN referring_physician_name_folded TEXT;
UPDATE studies SET patient_name_folded = casefold(patient_name),
                   referring_physician_name_folded = casefold(referring_physician_name);
DROP INDEX studies_patient_name;
CREATE INDEX studies_patient_name_folded ON studies (store_id, patient_name_folded COLLATE NOCASE);
"""),
    ("0005_datasets_and_operations", """
CREATE TABLE datasets (
  name TEXT PRIMARY KEY,
  time_zone TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL
);
INSERT INTO datasets (name, created_at)
  SELECT DISTINCT substr(name, 1, instr(name, '/dicomStores/') - 1), datetime('now') FROM stores;
ALTER TABLE stores ADD COLUMN config TEXT NOT NULL DEFAULT '{}';
ALTER TABLE stores ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
CREATE TABLE operations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  dataset TEXT NOT NULL,
  body TEXT NOT NULL
);
CREATE INDEX operations_dataset ON operations (dataset, id);
"""),
    ("0006_storage_class", """
ALTER TABLE instances ADD COLUMN storage_class TEXT NOT NULL DEFAULT 'STANDARD';
"""),
    ("0007_iam_policies", """
CREATE TABLE policies (resource TEXT PRIMARY KEY, body TEXT NOT NULL);
"""),
    # A store's studies in pk order (the rowid rides in every index): every search level
    # orders by the study's pk first, so a page is read in order and stops at its limit
    # instead of sorting the whole store.
    ("0008_studies_in_store_order", """
CREATE INDEX studies_store ON studies (store_id);
"""),
    # A study's instances in the order searches page them (the rowid rides along): choosing
    # a page, even one a deep offset puts past hundreds of thousands of instances, then
    # reads index entries only, never the instance rows with their metadata (10x at 255k).
    ("0009_instances_in_study_order", """
CREATE INDEX instances_study_order ON instances (study_pk, series_pk, instance_number);
"""),
    # Blobs of deleted or replaced instances, removed only after a grace period so that a
    # retrieve that found them before the delete reads them to the end.
    ("0010_blob_removals", """
CREATE TABLE blob_removals (blob_name TEXT PRIMARY KEY, queued_at REAL NOT NULL);
CREATE INDEX blob_removals_queued ON blob_removals (queued_at);
"""),
    # Operations whose work runs after the request that started it: the job (JSON), who
    # holds it and since when (a holder that dies stops renewing, and another takes over),
    # and whether a cancel was asked for.
    ("0011_operation_jobs", """
ALTER TABLE operations ADD COLUMN job TEXT;
ALTER TABLE operations ADD COLUMN claimed_by TEXT;
ALTER TABLE operations ADD COLUMN claimed_at REAL;
ALTER TABLE operations ADD COLUMN claims INTEGER NOT NULL DEFAULT 0;
ALTER TABLE operations ADD COLUMN cancel INTEGER NOT NULL DEFAULT 0;
CREATE INDEX operations_jobs ON operations (id) WHERE job IS NOT NULL;
"""),
)


def unknown_applied(path: Path) -> list[str]:
    """Migrations recorded in the index file at `path` that this version does not know (the
    index was written by a newer version); empty if there is no index yet."""
    if not path.is_file():
        return []
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            done = [row[0] for row in conn.execute("SELECT name FROM migrations")]
    except sqlite3.Error:  # no migrations table yet, or unreadable here: opening will tell
        return []
    known = {name for name, _ in MIGRATIONS}
    return [name for name in done if name not in known]


def pending(conn: sqlite3.Connection) -> list[str]:
    """The names of the migrations not yet applied (reading only)."""
    done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
    return [name for name, _ in MIGRATIONS if name not in done]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations not yet recorded; return the names applied. Safe for processes
    starting at once: each migration is applied under the write lock, after checking that
    no other process has applied it meanwhile."""
    conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
    applied = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone():
                conn.execute("COMMIT")  # another process applied it first
                continue
            if isinstance(sql, str):
                for statement in filter(str.strip, sql.split(";")):
                    conn.execute(statement)
            else:
                sql(conn)
            conn.execute("INSERT INTO migrations VALUES (?, ?)",
                         (name, datetime.now(UTC).isoformat()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
