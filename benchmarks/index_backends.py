"""Instance adds and study searches of the SQLite and the PostgreSQL index, through the
InstanceIndex Protocol, on this machine: `python -m benchmarks.index_backends [INSTANCES
SEARCHES]` (defaults 10,000 and 1,000). Instances come 5 to a study in 2 series, added 16
at a time (as a STOW's parts and concurrent requests arrive); the searches alternate a
PatientName prefix (`mül*`) and a one-month StudyDate range, one at a time, a page of 100.
PostgreSQL runs durable (fsync, synchronous commits), as SQLite does (synchronous=FULL)."""

import asyncio
import hashlib
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from storage.index.sqlite_index import SqliteIndex
from storage.protocols import InstanceIndex
from storage.query import Level, Match, MatchKind, Query
from storage.rows import InstanceRecord, Span
from tests.storage import postgres_server

SURNAMES = ["Müller", "Smith", "Гусева", "Jérôme", "Nakamura", "O'Brien", "Doe", "García",
            "Møller", "Dupont", "Schmidt", "Rossi", "Kowalski", "Novák", "Papadopoulos"]
PREFIXES = ["mül*", "smi*", "гус*", "jé*", "nak*", "o'b*", "do*", "gar*", "mø*", "du*"]
AT_ONCE = 16


def record(study: int, number: int, rng: random.Random) -> InstanceRecord:
    """Instance `number` (0-4) of study `study`, in series 1 (CT) or 2 (MR)."""
    series = 1 + number % 2
    study_uid, series_uid = f"1.2.826.0.1.{study}", f"1.2.826.0.1.{study}.{series}"
    sop_uid = f"{series_uid}.{number}"
    person = random.Random(study)
    name = f"{person.choice(SURNAMES)}^{person.choice(SURNAMES)}{study}"
    date = f"{2015 + study % 10}{1 + study % 12:02}{1 + study % 28:02}"
    attrs = {"00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
             "00080018": {"vr": "UI", "Value": [sop_uid]},
             "00080020": {"vr": "DA", "Value": [date]},
             "00080050": {"vr": "SH", "Value": [f"A{study:08}"]},
             "00080060": {"vr": "CS", "Value": [("CT", "MR")[series - 1]]},
             "00081030": {"vr": "LO", "Value": [f"Study {rng.randrange(1000)}"]},
             "00100010": {"vr": "PN", "Value": [{"Alphabetic": name}]},
             "00100020": {"vr": "LO", "Value": [f"P{study % 5000:06}"]},
             "0020000D": {"vr": "UI", "Value": [study_uid]},
             "0020000E": {"vr": "UI", "Value": [series_uid]},
             "00200011": {"vr": "IS", "Value": [series]},
             "00200013": {"vr": "IS", "Value": [number]}}
    return InstanceRecord(study_uid, series_uid, sop_uid, "1.2.840.10008.5.1.4.1.1.2",
                          "1.2.840.10008.1.2.1", attrs, orjson.dumps(attrs),
                          {"7FE00010": Span(1000, 524288)}, ((Span(1000, 524288),),))


def searches(count: int) -> list[Query]:
    """`count` study searches: PatientName prefixes and StudyDate months, alternately."""
    rng = random.Random(7)
    queries = []
    for n in range(count):
        if n % 2:
            year, month = rng.randrange(2015, 2025), rng.randrange(1, 13)
            key = Match(0x00080020, "DA", MatchKind.RANGE,
                        (f"{year}{month:02}01", f"{year}{month:02}31"))
        else:
            key = Match(0x00100010, "PN", MatchKind.WILDCARD, (rng.choice(PREFIXES),))
        queries.append(Query(Level.STUDY, (key,), limit=100))
    return queries


async def run(index: InstanceIndex, instances: int, count: int) -> str:
    """Add `instances`, then run `count` searches; the figures as one line."""
    await index.migrate()
    store = (await index.ensure_store("projects/p/locations/l/datasets/d/dicomStores/s",
                                      "full")).id
    rng = random.Random(1)
    records = [record(n // 5, n % 5, rng) for n in range(instances)]
    started = time.perf_counter()
    for start in range(0, len(records), AT_ONCE):
        await asyncio.gather(*(
            index.add_instance(store, r, uuid.uuid4().hex, 525000,
                               hashlib.sha256(r.sop_uid.encode()).hexdigest())
            for r in records[start:start + AT_ONCE]))
    adding = time.perf_counter() - started
    latencies, found = [], 0
    for query in searches(count):
        started = time.perf_counter()
        found += len((await index.search(store, query)).rows)
        latencies.append(time.perf_counter() - started)
    p95 = statistics.quantiles(latencies, n=20)[-1]
    return (f"{instances} adds {adding:.2f} s ({instances / adding:.0f}/s); {count} searches "
            f"{sum(latencies):.2f} s (mean {statistics.mean(latencies) * 1000:.2f} ms, "
            f"p95 {p95 * 1000:.2f} ms, {found} rows)")


async def main(instances: int = 10_000, count: int = 1_000) -> None:
    with tempfile.TemporaryDirectory() as directory:
        sqlite = SqliteIndex(Path(directory) / "index.sqlite")
        try:
            print("sqlite     ", await run(sqlite, instances, count))
        finally:
            await sqlite.close()
    server = postgres_server.start_server(durable=True)
    try:
        from storage.postgres.postgres_index import PostgresIndex

        postgres = PostgresIndex(server.dsn)
        try:
            print("postgresql ", await run(postgres, instances, count))
        finally:
            await postgres.close()
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main(*(int(arg) for arg in sys.argv[1:3])))
