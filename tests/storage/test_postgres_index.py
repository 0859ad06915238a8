"""What the PostgreSQL index adds to the contract suite: replicas sharing one database
(several PostgresIndex objects, each with its own pools, over one schema), searches that
find what the SQLite index finds, its own case folding, its time limit and an unreachable
database. A real PostgreSQL (postgres_server)."""

import asyncio
import contextlib
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from storage.index.query_builder import build_search
from storage.index.sqlite_index import SqliteIndex
from storage.levels import level_of
from storage.protocols import InstanceIndex, QueryTimeout
from storage.query import Level, Match, MatchKind, Query, SearchRow
from storage.rows import AddOutcome, InstanceRecord, Span
from tests.storage import postgres_server

asyncpg = postgres_server.asyncpg_or_skip()
from storage.postgres.dialect import POSTGRES  # noqa: E402
from storage.postgres.migrations import casefold_function  # noqa: E402
from storage.postgres.postgres_index import PostgresIndex  # noqa: E402

STORE = "projects/p/locations/l/datasets/d/dicomStores/s"


def record(study: str, series: str, sop: str) -> InstanceRecord:
    attrs = {"0020000D": {"vr": "UI", "Value": [study]},
             "0020000E": {"vr": "UI", "Value": [series]},
             "00080018": {"vr": "UI", "Value": [sop]}}
    return InstanceRecord(study, series, sop, "1.2.840.10008.5.1.4.1.1.2",
                          "1.2.840.10008.1.2.1", attrs, orjson.dumps(attrs),
                          {"7FE00010": Span(10, 10)}, ((Span(10, 10),),))


async def add(index: InstanceIndex, store: int, rec: InstanceRecord,
              sha: str = "a" * 64) -> AddOutcome:
    return await index.add_instance(store, rec, uuid.uuid4().hex, 100, sha)


@pytest.fixture
def dsn(tmp_path: Path) -> str:
    return postgres_server.index_dsn(tmp_path)


@pytest.fixture
async def replicas(dsn: str) -> AsyncIterator[list[PostgresIndex]]:
    """Three indexes over one database, migrated, as three archive replicas hold them."""
    indexes = [PostgresIndex(dsn, readers=2, writers=4) for _ in range(3)]
    await indexes[0].migrate()
    yield indexes
    for index in indexes:
        await index.close()


async def test_replicas_storing_one_instance_at_once_settle_through_its_key(
        replicas: list[PostgresIndex]) -> None:
    """The same bytes from every replica at once: one STORED, the others DUPLICATE; other
    bytes under the same UID: one STORED, the others CONFLICT; the counts stay exact."""
    store = (await replicas[0].ensure_store(STORE, "full")).id
    same = record("1.2.3", "1.2.3.1", "1.2.3.1.1")
    outcomes = await asyncio.gather(*(add(r, store, same) for r in replicas for _ in range(3)))
    assert sorted(o.value for o in outcomes) == ["duplicate"] * 8 + ["stored"]
    other = record("1.2.3", "1.2.3.1", "1.2.3.1.2")
    outcomes = await asyncio.gather(*(add(r, store, other, str(n) * 64)
                                      for n, r in enumerate(replicas)))
    assert sorted(o.value for o in outcomes) == ["conflict"] * 2 + ["stored"]
    [study] = (await replicas[1].search(store, Query(Level.STUDY))).rows
    assert (study.study_instances, study.study_series) == (2, 1)
    assert await replicas[2].parents_astray(repair=False) == (0, 0)


async def test_replicas_adding_and_deleting_in_one_study_keep_its_counts(
        replicas: list[PostgresIndex]) -> None:
    """Adds of one study from two replicas while a third deletes its series: every change
    takes its turn on the study's row; nothing is astray and the counts are the rows'."""
    store = (await replicas[0].ensure_store(STORE, "full")).id

    async def adding(index: PostgresIndex, name: int) -> None:
        for n in range(30):
            await add(index, store, record("1.2.3", f"1.2.3.{n % 3}", f"1.2.3.{name}.{n}"))

    async def deleting() -> None:
        for n in range(15):
            await replicas[2].delete(store, "1.2.3", f"1.2.3.{n % 3}")
            await asyncio.sleep(0)

    await asyncio.gather(adding(replicas[0], 1), adding(replicas[1], 2), deleting())
    assert await replicas[2].parents_astray(repair=False) == (0, 0)
    located = await replicas[0].locate(store, "1.2.3")
    studies = (await replicas[1].search(store, Query(Level.STUDY))).rows
    assert [(s.study_instances, s.study_series) for s in studies] == (
        [(len(located), len({loc.series_uid for loc in located}))] if located else [])


async def test_replicas_draining_the_removal_queue_take_turns(dsn: str,
                                                              replicas: list[PostgresIndex]
                                                              ) -> None:
    """Queued removals claimed by one replica (FOR UPDATE SKIP LOCKED) are not offered to
    another until done, or until the claim runs out."""
    store = (await replicas[0].ensure_store(STORE, "full")).id
    for n in range(10):
        await add(replicas[0], store, record("1.2.3", "1.2.3.1", f"1.2.3.1.{n}"))
    names = await replicas[0].delete(store, "1.2.3") or []
    first, second = await asyncio.gather(replicas[1].due_removals(0, 6),
                                         replicas[2].due_removals(0, 10))
    assert not set(first) & set(second) and sorted(first + second) == sorted(names)
    assert await replicas[1].due_removals(0, 10) == first  # still its own
    assert await replicas[2].due_removals(0, 10) == second
    await replicas[1].removals_done(first)
    assert await replicas[0].due_removals(0, 10) == []  # the rest are claimed by another
    impatient = PostgresIndex(dsn, claim_seconds=0)
    try:
        assert sorted(await impatient.due_removals(0, 10)) == sorted(second)
    finally:
        await impatient.close()


def test_migrations_from_several_processes_apply_once(dsn: str) -> None:
    """Processes starting together on a fresh database: one applies, the others wait for
    its advisory lock and find nothing left to do."""
    script = ("import asyncio, sys\n"
              "from storage.postgres.postgres_index import PostgresIndex\n"
              "async def main():\n"
              "    index = PostgresIndex(sys.argv[1])\n"
              "    print(','.join(await index.migrate()))\n"
              "    await index.close()\n"
              "asyncio.run(main())\n")
    root = Path(__file__).parents[2]
    workers = [subprocess.Popen([sys.executable, "-c", script, dsn], cwd=root, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for _ in range(4)]
    results = [worker.communicate(timeout=60) for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 4, results
    applied = sorted(out.strip() for out, _ in results)
    assert applied[:3] == ["", "", ""] and applied[3].startswith("0001_initial")


@pytest.mark.parametrize("icu", [True, False], ids=["icu", "without-icu"])
async def test_casefold_is_pythons_for_every_character(dsn: str, icu: bool) -> None:
    """pacs_casefold(text) is str.casefold for each code point and for mixed names, with or
    without ICU: matching in PostgreSQL folds as the SQLite index does."""
    conn = await asyncpg.connect(dsn)
    try:
        has_icu = await conn.fetchval("SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu'")
        if icu and not has_icu:
            pytest.skip("this PostgreSQL has no ICU")
        await conn.execute(casefold_function(icu))
        chars = [chr(c) for c in range(1, sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
        texts = [*chars, "ГУСЕВА^Jérôme", "STRAẞE ΟΔΟΣ", "ﬁNE Ǆ ᾈ İ", "DOE^JOHN", ""]
        for start in range(0, len(texts), 100_000):
            chunk = texts[start:start + 100_000]
            folded = await conn.fetch("SELECT pacs_casefold(t) FROM unnest($1::text[]) "
                                      "WITH ORDINALITY AS x (t, n) ORDER BY n", chunk)
            wrong = [t for t, (f,) in zip(chunk, folded, strict=True) if f != t.casefold()]
            assert wrong == []
    finally:
        await conn.close()


@pytest.mark.parametrize(("tag", "index"), [
    (0x00080050, "studies_accession_number_trigrams"),
    (0x00100010, "studies_patient_name_trigrams"),
    (0x00100020, "studies_patient_id_trigrams"),
    (0x00081030, "studies_study_description_trigrams")])
async def test_study_list_text_filters_use_their_trigram_index(dsn: str, tag: int,
                                                               index: str) -> None:
    """OHIF's `*typed text*` filters can use their trigram index (migration 0004) when the
    pattern holds three characters in a row; a shorter one never does, even in a generic
    plan, where its empty trigram set would have the index read whole."""
    idx = PostgresIndex(dsn, readers=1, writers=1)
    await idx.migrate()
    store = (await idx.ensure_store(STORE, "full")).id
    await idx.close()
    vr = {0x00100010: "PN", 0x00081030: "LO", 0x00100020: "LO"}.get(tag, "SH")
    conn = await asyncpg.connect(dsn)
    try:  # 20,000 studies of random text (the plans follow the statistics, not the rows)
        await conn.execute(
            "INSERT INTO studies (store_id, study_uid, accession_number, patient_name, "
            "patient_name_folded, patient_id, study_description, attrs) SELECT $1, "
            "'1.2.' || n, left(md5(n::text), 12), md5('n' || n), md5('n' || n), "
            "md5('i' || n), md5('d' || n), '{}' FROM generate_series(1, 20000) AS n", store)
        await conn.execute("ANALYZE studies")

        async def plan(pattern: str) -> str:
            sql, values = build_search(POSTGRES, store, Query(Level.STUDY, limit=100, matches=(
                key(tag, vr, MatchKind.WILDCARD, pattern),)))
            return "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", *values))
        assert index in await plan("*a1b2*") and index in await plan("*C0FFEE*")
        # generic plans, and the planner pushed off the other paths: the index is not there
        await conn.execute("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = "
                           "off; SET enable_indexscan = off")
        for pattern in ("*a1*", "a*", "*"):
            assert index not in await plan(pattern), pattern
    finally:
        await conn.close()


NAMES = ["Müller^Hans", "MÜLLER^hans", "Straße^Anna", "STRASSE^ANNA", "ΟΔΟΣ^Σοφία",
         "O'Brien^Seán", "van der Berg^Jan", "Doe^John^^Dr", "Sm_th%^Ann", "Гусева^Ирина", None]


def varied(n: int) -> InstanceRecord:
    """Instance `n` of a corpus that exercises every matching type on columns and on JSON:
    names in several scripts and cases, texts with LIKE's own characters, numbers, times."""
    study, series = f"1.2.{n % 13}", f"1.2.{n % 13}.{n % 3}"
    name = NAMES[n % len(NAMES)]
    values = {
        "00080016": ("UI", f"1.2.840.10008.5.1.4.1.1.{(2, 4, 7)[n % 3]}"),
        "00080018": ("UI", f"{series}.{n}"), "00080020": ("DA", f"20{10 + n % 13}0{1 + n % 9}15"),
        "00080030": ("TM", f"{8 + n % 13:02}{n % 60:02}00"), "00080050": ("SH", f"ACC{n % 13}"),
        "00080060": ("CS", ("CT", "MR", "US")[n % 3]),
        "00080080": ("LO", ("Hôpital Nord", "HOPITAL nord", "Clinic_1")[n % 3]),
        "00081030": ("LO", ("Thorax a.p.", "SCHÄDEL nativ", "50% dose_x")[n % 13 % 3]),
        "00100020": ("LO", f"PID{n % 13:03}"), "0020000D": ("UI", study),
        "0020000E": ("UI", series), "00180015": ("CS", ("HEAD_NECK", "CHEST", "[ABD]")[n % 3]),
        "00180050": ("DS", ("1.25", "2", "0.625")[n % 3]), "00200011": ("IS", n % 3 + 1),
        "00200013": ("IS", n)}
    attrs: dict[str, object] = {tag: {"vr": vr, "Value": [value]}
                                for tag, (vr, value) in values.items()}
    for tag in ("00100010", "00080090", "00081060"):  # patient, referring, reading physician
        attrs[tag] = {"vr": "PN"} if name is None else {"vr": "PN", "Value": [
            {"Alphabetic": NAMES[(n % 13 + int(tag, 16)) % (len(NAMES) - 1)]
             if tag != "00100010" else name}]}
    return InstanceRecord(study, series, f"{series}.{n}", str(values["00080016"][1]),
                          "1.2.840.10008.1.2.1", attrs, orjson.dumps(attrs),
                          {"7FE00010": Span(10, 10)}, ((Span(10, 10),),))


def key(tag: int, vr: str, kind: MatchKind, *values: str) -> Match:
    return Match(tag, vr, kind, values)


W, R, F, S, L = (MatchKind.WILDCARD, MatchKind.RANGE, MatchKind.FUZZY, MatchKind.SINGLE,
                 MatchKind.LIST)
KEYS = [
    key(0x00100010, "PN", S, "müller^hans"), key(0x00100010, "PN", S, "STRASSE^ANNA"),
    key(0x00100010, "PN", W, "MÜL*"), key(0x00100010, "PN", W, "straße*"),
    key(0x00100010, "PN", W, "οδος*"), key(0x00100010, "PN", W, "sm_th%*"),
    key(0x00100010, "PN", W, "?oe^*"), key(0x00100010, "PN", F, "hans", "ирина"),
    key(0x00100010, "PN", F, "BERG"), key(0x00080090, "PN", W, "*o*"),
    key(0x00081060, "PN", W, "GUS*"), key(0x00081060, "PN", F, "seán"),
    key(0x00081060, "PN", S, "o'brien^seán"), key(0x00081030, "LO", W, "*schädel*"),
    key(0x00081030, "LO", W, "50% dose_?"), key(0x00081030, "LO", W, "5_*"),
    key(0x00081030, "LO", S, "Thorax a.p."), key(0x00080080, "LO", W, "hôpital*"),
    key(0x00180015, "CS", W, "HEAD_*"), key(0x00180015, "CS", W, "[ABD]"),
    key(0x00180015, "CS", W, "head*"), key(0x00180015, "CS", S, "CHEST"),
    key(0x00080020, "DA", R, "20150101", "20191231"), key(0x00080020, "DA", R, "", "2012"),
    key(0x00080020, "DA", R, "20200101", ""), key(0x00080030, "TM", R, "0900", "1230"),
    key(0x00080030, "TM", R, "2000", ""), key(0x00080050, "SH", S, "ACC7"),
    key(0x00100020, "LO", W, "pid00*"), key(0x0020000D, "UI", L, "1.2.3", "1.2.11", "9"),
    key(0x00080060, "CS", S, "MR"), key(0x00080061, "CS", S, "US"),
    key(0x00080061, "CS", W, "M?"), key(0x00080062, "UI", S, "1.2.840.10008.5.1.4.1.1.7"),
    key(0x00200011, "IS", S, "2"), key(0x00200013, "IS", S, "+7"),
    key(0x00180050, "DS", S, "1.250"), key(0x00180050, "DS", S, "2.0"),
    key(0x00080018, "UI", L, "1.2.4.1.4", "1.2.5.2.44"),
]


def unordered(rows: list[SearchRow]) -> list[SearchRow]:
    """`rows` with their computed lists sorted (an aggregate's order is the database's)."""
    return [replace(r, modalities=tuple(sorted(r.modalities)),
                    sop_classes=tuple(sorted(r.sop_classes))) for r in rows]


async def test_searches_agree_with_sqlite(tmp_path: Path, dsn: str) -> None:
    """Every matching type, on indexed columns and on attributes kept in JSON, at every
    level and over pages, finds exactly what the SQLite index finds, in the same order."""
    sqlite = SqliteIndex(tmp_path / "index.sqlite")
    postgres = PostgresIndex(dsn)
    try:
        stores = []
        for index in (sqlite, postgres):
            await index.migrate()
            store = (await index.ensure_store(STORE, "full")).id
            for n in range(120):
                assert await add(index, store, varied(n)) is AddOutcome.STORED
            stores.append(store)
        queries = [Query(level, (match,), limit=limit, offset=offset)
                   for level in Level for match in KEYS for limit, offset in ((1000, 0), (7, 5))
                   if level_of(match.tag).value <= level.value]  # a key of its level or above
        queries += [Query(Level.INSTANCE, study_uid="1.2.4", series_uid="1.2.4.1"),
                    Query(Level.SERIES, tuple(KEYS[:2]), study_uid="1.2.1")]
        found = 0
        for query in queries:
            ours = await sqlite.search(stores[0], query)
            theirs = await postgres.search(stores[1], query)
            assert (theirs.more, unordered(theirs.rows)) == (ours.more, unordered(ours.rows)), query
            found += len(ours.rows)
        assert found > 2000  # the keys do select
    finally:
        await sqlite.close()
        await postgres.close()


async def test_a_read_past_the_time_limit_raises_query_timeout(dsn: str) -> None:
    """The server cancels a read at the limit; it raises the Protocol's QueryTimeout
    (which the server answers 503), and the next read on the pool works."""
    index = PostgresIndex(dsn, read_time_limit=0.001)
    try:
        await index.migrate()
        store = (await index.ensure_store(STORE, "full")).id
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "INSERT INTO studies (store_id, study_uid, attrs) SELECT $1, '1.2.' || n, "
                "'{\"00081060\": {\"vr\": \"PN\", \"Value\": [{\"Alphabetic\": \"Röntgen\"}]}}' "
                "FROM generate_series(1, 50000) n", store)
        finally:
            await conn.close()
        slow = Query(Level.STUDY, (Match(0x00081060, "PN", MatchKind.WILDCARD, ("*x*",)),))
        with pytest.raises(QueryTimeout):
            await index.search(store, slow)
        for _ in range(50):  # a 1 ms limit may cut even this read short on a busy machine;
            with contextlib.suppress(QueryTimeout):  # a broken pool raises something else
                assert await index.get_store(STORE) is not None
                break
        else:
            pytest.fail("no read succeeded after the timeout")
    finally:
        await index.close()


async def test_an_unreachable_database_raises_oserror() -> None:
    """Nothing listening: check, reads and writes raise OSError (the server answers 503)."""
    index = PostgresIndex(f"postgresql://postgres@127.0.0.1:{postgres_server.free_port()}/x")
    try:
        with pytest.raises(OSError):
            await index.check()
        with pytest.raises(OSError):
            await index.get_store(STORE)
        with pytest.raises(OSError):
            await index.migrate()
    finally:
        await index.close()


async def test_a_database_that_stops_raises_oserror() -> None:
    """A database gone from under open pools: reads, writes and check raise OSError."""
    server = postgres_server.start_server()
    index = PostgresIndex(server.dsn)
    try:
        await index.migrate()
        store = (await index.ensure_store(STORE, "full")).id
        assert await add(index, store, record("1.2.3", "1.2.3.1", "1.2.3.1.1")) is (
            AddOutcome.STORED)
        server.stop()
        with pytest.raises(OSError):
            await index.check()
        with pytest.raises(OSError):
            await index.locate(store, "1.2.3")
        with pytest.raises(OSError):
            await add(index, store, record("1.2.3", "1.2.3.1", "1.2.3.1.2"))
    finally:
        server.stop()
        await index.close()

