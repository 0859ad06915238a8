"""Every BlobStore and InstanceIndex holds to what `storage/protocols.py` promises.

Only the factories know an implementation; tests use Protocol methods alone. A factory given
the same `tmp_path` twice opens the same storage (a second process over it).
"""

import asyncio
import hashlib
import io
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

import orjson
import pytest

from storage.filesystem_blobs import FilesystemBlobStore
from storage.index.sqlite_index import SqliteIndex
from storage.protocols import BlobStore, InstanceIndex, StagedBlob
from storage.query import Level, Match, MatchKind, Query, SearchRow
from storage.rows import AddOutcome, InstanceRecord, JobRow, Metrics, Span
from tests.storage import postgres_server, s3_server

BlobFactory = Callable[[Path], BlobStore]
IndexFactory = Callable[[Path], InstanceIndex]
BLOB_FACTORIES: list[BlobFactory] = [lambda path: FilesystemBlobStore(path / "blobs"),
                                     s3_server.blob_store]
INDEX_FACTORIES: list[IndexFactory] = [
    lambda path: SqliteIndex(path / "index.sqlite", readers=2, read_time_limit=10.0),
    postgres_server.postgres_index]


@pytest.fixture(params=BLOB_FACTORIES, ids=["filesystem", "s3"])
def blob_factory(request: pytest.FixtureRequest) -> BlobFactory:
    factory: BlobFactory = request.param
    return factory


@pytest.fixture
def blob_store(blob_factory: BlobFactory, tmp_path: Path) -> BlobStore:
    return blob_factory(tmp_path)


@pytest.fixture(params=INDEX_FACTORIES, ids=["sqlite", "postgresql"])
def index_factory(request: pytest.FixtureRequest) -> IndexFactory:
    factory: IndexFactory = request.param
    return factory


@pytest.fixture
async def index(index_factory: IndexFactory, tmp_path: Path) -> AsyncIterator[InstanceIndex]:
    idx = index_factory(tmp_path)
    await idx.migrate()
    yield idx
    await idx.close()


@pytest.fixture
async def store(index: InstanceIndex) -> int:
    return (await index.ensure_store("projects/p/locations/l/datasets/d/dicomStores/a", "x")).id


def stage(store: BlobStore, *pieces: bytes, close: bool = True) -> StagedBlob:
    """A blob of `store` staged with `pieces`, closed unless told not to."""
    staged = store.stage()
    for piece in pieces:
        staged.write(piece)
    if close:
        staged.close()
    return staged


def put(store: BlobStore, *pieces: bytes) -> str:
    """Stage, write, close and commit `pieces`; the committed name."""
    return store.commit(stage(store, *pieces))


# BlobStore and StagedBlob


def test_stage_commit_and_read(blob_store: BlobStore) -> None:
    """Pieces add up in size and SHA-256; the closed blob reads back seekably; once committed,
    `read` gives `length` bytes, fewer only at the end and none past it."""
    staged = blob_store.stage()
    assert (staged.size, staged.sha256) == (0, hashlib.sha256().hexdigest())
    pieces = [b"DICM", b"", bytes(range(256)) * 300, b"tail"]
    digest, data = hashlib.sha256(), b""
    for piece in pieces:
        staged.write(piece)
        digest.update(piece)
        data += piece
        assert (staged.size, staged.sha256) == (len(data), digest.hexdigest())
    staged.close()
    assert (staged.size, staged.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    with staged.open() as reader:
        assert reader.read() == data
        assert reader.seekable()
        reader.seek(1000)
        assert reader.read(10) == data[1000:1010]
        reader.seek(-4, io.SEEK_END)
        assert reader.read() == b"tail"
    name, end = blob_store.commit(staged), len(data)
    assert isinstance(name, str) and name and blob_store.read(name, 0, end + 10) == data
    assert blob_store.read(name, 1000, 7000) == data[1000:8000]
    assert blob_store.read(name, end - 4, 10) == b"tail" and blob_store.read(name, 9, 0) == b""
    assert blob_store.read(name, end, 5) == b"" == blob_store.read(name, end + 1000, 5)


def test_a_read_of_read_size_bytes_is_served_whole(blob_store: BlobStore) -> None:
    """`read_size` is what a streamed retrieve reads at once: a real size, and a read of
    that many bytes from a bigger blob gets them all."""
    assert isinstance(blob_store.read_size, int) and 64 * 1024 <= blob_store.read_size
    name = put(blob_store, bytes(blob_store.read_size + 10))
    assert len(blob_store.read(name, 5, blob_store.read_size)) == blob_store.read_size


def test_names_are_never_reused(blob_store: BlobStore) -> None:
    """Identical bytes committed again, even after a delete, get a new name."""
    names = [put(blob_store, b"same bytes") for _ in range(5)]
    assert len(set(names)) == 5
    blob_store.delete(names[0])
    assert put(blob_store, b"same bytes") not in names
    assert all(blob_store.read(n, 0, 100) == b"same bytes" for n in names[1:])
    empty = put(blob_store)
    assert empty not in names and blob_store.read(empty, 0, 10) == b""


class ForeignStagedBlob:
    """A complete StagedBlob that no store staged."""

    size, sha256 = 0, hashlib.sha256().hexdigest()
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def discard(self) -> None: ...

    def open(self) -> BinaryIO:
        return io.BytesIO()


def test_commit_of_foreign_blob_raises_type_error(blob_store: BlobStore,
                                                  blob_factory: BlobFactory,
                                                  tmp_path: Path) -> None:
    """A staged blob of another kind, or of another store, is refused; nothing is stored."""
    with pytest.raises(TypeError):
        blob_store.commit(ForeignStagedBlob())
    elsewhere = blob_factory(tmp_path / "elsewhere").stage()
    elsewhere.write(b"x")
    elsewhere.close()
    with pytest.raises(TypeError):
        blob_store.commit(elsewhere)
    elsewhere.discard()
    assert list(blob_store.names(-1)) == []


def test_delete_and_read_errors(blob_store: BlobStore) -> None:
    """Delete removes one blob, then does nothing; reading it or its size is
    FileNotFoundError and reading what could not be a name is ValueError."""
    gone, kept = put(blob_store, b"a"), put(blob_store, b"b")
    blob_store.delete(gone)
    blob_store.delete(gone)
    assert set(blob_store.names(-1)) == {kept} and blob_store.read(kept, 0, 1) == b"b"
    with pytest.raises(FileNotFoundError):
        blob_store.read(gone, 0, 1)
    with pytest.raises(FileNotFoundError):
        blob_store.size(gone)
    assert blob_store.size(kept) == 1 and blob_store.size(put(blob_store, b"x" * 70_000)) == 70_000
    for bad in ["", "../" + gone, gone + "/..", "no such name!", "a\x00b"]:
        with pytest.raises(ValueError):
            blob_store.read(bad, 0, 1)


def test_discard_is_idempotent_and_leaves_nothing(blob_store: BlobStore) -> None:
    """Discarded blobs (closed or not) leave no blob and no staging leftover."""
    closed, open_ = stage(blob_store, b"x" * 1000), stage(blob_store, b"y", close=False)
    for staged in (closed, open_, closed, open_):
        staged.discard()
    assert list(blob_store.names(-1)) == []
    assert blob_store.discard_staging(-1) == 0


def test_check_passes_while_the_store_can_be_reached(blob_store: BlobStore) -> None:
    blob_store.check()
    put(blob_store, b"x")
    blob_store.check()


def test_names_lists_committed_blobs_by_age(blob_store: BlobStore) -> None:
    """Fresh committed blobs are older than -1 s, not older than an hour; staged ones never."""
    committed, staged = {put(blob_store, b"one"), put(blob_store, b"2")}, stage(blob_store, b"3")
    assert set(blob_store.names(-1)) == committed
    assert list(blob_store.names(3600)) == []
    staged.discard()


def test_discard_staging_keeps_what_this_store_receives(blob_store: BlobStore) -> None:
    """Blobs this instance is receiving survive cleanup at any age, and commit intact."""
    writing, complete = stage(blob_store, b"first ", close=False), stage(blob_store, b"complete")
    assert blob_store.discard_staging(-1) == 0
    writing.write(b"second")
    writing.close()
    assert blob_store.discard_staging(-1) == 0
    names = [blob_store.commit(writing), blob_store.commit(complete)]
    assert [blob_store.read(n, 0, 100) for n in names] == [b"first second", b"complete"]
    assert blob_store.discard_staging(-1) == 0


def test_discard_staging_removes_abandoned_blobs(blob_factory: BlobFactory, tmp_path: Path,
                                                 blob_store: BlobStore) -> None:
    """Blobs staged by another process over the same storage go once old enough; counted."""
    other = blob_factory(tmp_path)
    for content in (b"abandoned", b"also abandoned"):
        stage(other, content)
    mine = stage(blob_store, b"mine")
    assert blob_store.discard_staging(3600) == 0
    assert (blob_store.count_staging(3600), blob_store.count_staging(-1)) == (0, 2)
    assert blob_store.count_staging(-1) == 2  # counting removes nothing
    assert blob_store.discard_staging(-1) == 2
    assert blob_store.count_staging(-1) == 0
    assert blob_store.discard_staging(-1) == 0
    assert blob_store.read(blob_store.commit(mine), 0, 10) == b"mine"
    assert set(other.names(-1)) == set(blob_store.names(-1))


# InstanceIndex

CLASSES = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4",
           "US": "1.2.840.10008.5.1.4.1.1.6.1"}
Frames = tuple[tuple[Span, ...], ...]
ONE_FRAME: Frames = ((Span(100, 50),),)


def record(study: str, series: str, sop: str, *, number: int = 1, series_number: int = 1,
           modality: str = "CT", name: str = "Doe^John", date: str = "20240101",
           frames: Frames = ONE_FRAME, bulk: dict[str, Span] | None = None,
           ) -> InstanceRecord:
    """An InstanceRecord with its DICOM JSON built by hand."""
    attrs = {"00080016": {"vr": "UI", "Value": [CLASSES[modality]]},
             "00080018": {"vr": "UI", "Value": [sop]}, "00080020": {"vr": "DA", "Value": [date]},
             "00080060": {"vr": "CS", "Value": [modality]},
             "00100010": {"vr": "PN", "Value": [{"Alphabetic": name}]},
             "0020000D": {"vr": "UI", "Value": [study]},
             "0020000E": {"vr": "UI", "Value": [series]},
             "00200011": {"vr": "IS", "Value": [series_number]},
             "00200013": {"vr": "IS", "Value": [number]}}
    return InstanceRecord(study, series, sop, CLASSES[modality], "1.2.840.10008.1.2.1", attrs,
                          orjson.dumps(attrs), bulk or {"7FE00010": Span(100, 50)}, frames)


async def add(index: InstanceIndex, store: int, rec: InstanceRecord, sha: str | None = None,
              size: int = 1000) -> tuple[AddOutcome, str]:
    """Add `rec` under a fresh blob name; the outcome and that name."""
    blob = uuid.uuid4().hex
    sha = sha or hashlib.sha256(rec.sop_uid.encode()).hexdigest()
    return await index.add_instance(store, rec, blob, size, sha), blob


async def find(index: InstanceIndex, store: int, level: Level, *keys: Match,
               study_uid: str | None = None, series_uid: str | None = None) -> list[SearchRow]:
    """Every row of a search that fits in one page."""
    result = await index.search(store, Query(level, keys, study_uid, series_uid))
    assert not result.more
    return result.rows


async def test_migrate_applies_once(index_factory: IndexFactory, tmp_path: Path) -> None:
    """The first migrate names what it applied; later ones, even reopened, apply nothing."""
    first = index_factory(tmp_path)
    try:
        applied = await first.migrate()
        assert applied and all(isinstance(n, str) and n for n in applied)
        assert len(set(applied)) == len(applied) and await first.migrate() == []
    finally:
        await first.close()
    again = index_factory(tmp_path)
    try:
        assert await again.migrate() == []
    finally:
        await again.close()


async def test_migrate_from_several_processes_at_once(index_factory: IndexFactory,
                                                      tmp_path: Path) -> None:
    """Workers starting together each migrate the same fresh index: every migration is
    applied exactly once among them, and none fails."""
    indexes = [index_factory(tmp_path) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(idx.migrate() for idx in indexes))
        names = [name for one in applied for name in one]
        assert names and len(names) == len(set(names))
        again = index_factory(tmp_path)
        assert await again.migrate() == []
        await again.close()
    finally:
        for idx in indexes:
            await idx.close()


async def test_stores(index: InstanceIndex) -> None:
    """ensure_store creates once and keeps the profile; get_store finds it or gives None."""
    a = await index.ensure_store("projects/p/locations/l/datasets/d/dicomStores/a", "google")
    assert (a.name, a.profile) == ("projects/p/locations/l/datasets/d/dicomStores/a", "google")
    assert await index.ensure_store(a.name, "other") == a == await index.get_store(a.name)
    b = await index.ensure_store("projects/p/locations/l/datasets/d/dicomStores/b", "other")
    assert b.id != a.id and b.profile == "other"
    assert await index.get_store("projects/p/locations/l/datasets/d/dicomStores/c") is None


async def test_add_outcomes_and_nothing_changes(index: InstanceIndex, store: int) -> None:
    """STORED, then DUPLICATE for the same hash and CONFLICT for another; both change nothing."""
    rec = record("1.2.3", "1.2.3.1", "1.2.3.1.1")
    outcome, blob = await add(index, store, rec, "a" * 64, 1234)
    assert outcome is AddOutcome.STORED
    before = (await index.locate(store, "1.2.3"), await index.metadata(store, "1.2.3"))
    dup, dup_blob = await add(index, store, rec, "a" * 64, 1234)
    other = record("1.2.3", "1.2.3.1", "1.2.3.1.1", name="Other^Name")
    conflict, conflict_blob = await add(index, store, other, "b" * 64, 99)
    assert (dup, conflict) == (AddOutcome.DUPLICATE, AddOutcome.CONFLICT)
    after = (await index.locate(store, "1.2.3"), await index.metadata(store, "1.2.3"))
    assert after == before and [loc.blob_name for loc in after[0]] == [blob]
    assert await index.referenced([blob, dup_blob, conflict_blob]) == {blob}
    rows = await find(index, store, Level.STUDY)
    assert [(r.study_instances, r.study_series) for r in rows] == [(1, 1)]


async def test_series_conflict(index: InstanceIndex, store: int) -> None:
    """A series UID already under another study is refused; its study is untouched."""
    _, blob = await add(index, store, record("1.2.3", "1.2.3.1", "1.2.3.1.1"))
    outcome, other = await add(index, store, record("1.2.4", "1.2.3.1", "1.2.4.1.1"))
    assert outcome is AddOutcome.SERIES_CONFLICT
    assert await index.locate(store, "1.2.4") == []
    assert [loc.sop_uid for loc in await index.locate(store, "1.2.3")] == ["1.2.3.1.1"]
    assert await index.referenced([blob, other]) == {blob}
    rows = await find(index, store, Level.SERIES, study_uid="1.2.3")
    assert [(r.series_uid, r.study_series, r.series_instances) for r in rows] == [
        ("1.2.3.1", 1, 1)]
    studies = await find(index, store, Level.STUDY)  # no empty study 1.2.4 was left behind
    assert [(r.study_uid, r.study_instances) for r in studies] == [("1.2.3", 1)]


async def test_concurrent_adds_settle_alone(index: InstanceIndex, store: int) -> None:
    """Adds and replacements made at once (which may share one commit) each get their own
    outcome: the refused ones change nothing, and none undoes another's row."""
    await add(index, store, record("1.2.9", "1.2.9.1", "1.2.9.1.1"), "a" * 64)
    await add(index, store, record("1.2.9", "1.2.9.1", "1.2.9.1.2"))  # the series stays
    fresh = [record("1.2.3", f"1.2.3.{s}", f"1.2.3.{s}.{i}") for s in (1, 2) for i in range(20)]
    refused = [
        add(index, store, record("1.2.9", "1.2.9.1", "1.2.9.1.1"), "b" * 64),  # CONFLICT
        add(index, store, record("1.2.8", "1.2.9.1", "1.2.8.1.1")),  # SERIES_CONFLICT
        add(index, store, record("1.2.9", "1.2.9.1", "1.2.9.1.1"), "a" * 64),  # DUPLICATE
    ]
    moved = index.replace_instance(store, record("1.2.7", "1.2.9.1", "1.2.9.1.1"), "c" * 32,
                                   5, "c" * 64)  # refused replacement: rolled back alone
    *outcomes, replaced = await asyncio.gather(*(add(index, store, r) for r in fresh),
                                               *refused, moved)
    assert [o for o, _ in outcomes] == [AddOutcome.STORED] * len(fresh) + [
        AddOutcome.CONFLICT, AddOutcome.SERIES_CONFLICT, AddOutcome.DUPLICATE]
    assert replaced == (AddOutcome.SERIES_CONFLICT, None)
    stored = await index.locate(store, "1.2.3")
    assert sorted(loc.sop_uid for loc in stored) == sorted(r.sop_uid for r in fresh)
    studies = await find(index, store, Level.STUDY)
    assert sorted((r.study_uid, r.study_instances, r.study_series) for r in studies) == [
        ("1.2.3", 40, 2), ("1.2.9", 2, 1)]
    names = [name for _, name in outcomes]
    assert await index.referenced(names) == set(names[:len(fresh)])


async def test_stores_are_isolated(index: InstanceIndex, store: int) -> None:
    """The same UIDs in two stores are two instances; each store sees only its own."""
    other = (await index.ensure_store("projects/p/locations/l/datasets/d/dicomStores/b", "x")).id
    rec = record("1.2.3", "1.2.3.1", "1.2.3.1.1")
    _, mine = await add(index, store, rec, "a" * 64)
    outcome, theirs = await add(index, other, rec, "b" * 64)
    assert outcome is AddOutcome.STORED
    assert [loc.blob_name for loc in await index.locate(other, "1.2.3")] == [theirs]
    assert await index.delete(store, "1.2.3") == [mine]
    assert await index.locate(store, "1.2.3") == [] == await find(index, store, Level.INSTANCE)
    assert [r.sop_uid for r in await find(index, other, Level.INSTANCE)] == ["1.2.3.1.1"]
    await removed(index, [mine])
    assert await index.referenced([mine, theirs]) == {theirs}


A, B, C = "1.2.3.1", "1.2.3.2", "1.2.3.3"
A1, A2 = f"{A}.2", f"{A}.10"  # CT series number 2 and MR series number 10 of study A
Corpus = dict[str, tuple[InstanceRecord, str, int]]  # sop → record, blob name, blob size


@pytest.fixture
async def corpus(index: InstanceIndex, store: int) -> Corpus:
    """Study A: CT series 2 (instances 10 and 2, added in that order) and MR series 10;
    studies B (CT) and C (US) of other patients and dates."""
    recs = [record(A, A2, f"{A2}.1", series_number=10, modality="MR"),
            record(A, A1, f"{A1}.10", number=10, series_number=2,
                   frames=((Span(300, 40),), (Span(340, 10), Span(350, 30))),
                   bulk={"7FE00010": Span(300, 80), "00540016/0/00181078": Span(20, 8)}),
            record(A, A1, f"{A1}.2", number=2, series_number=2),
            record(B, f"{B}.1", f"{B}.1.1", name="Roe^Jane", date="20240315"),
            record(C, f"{C}.1", f"{C}.1.1", modality="US", name="Smith^Anna", date="20231231")]
    added: Corpus = {}
    for size, rec in enumerate(recs, start=1000):
        outcome, blob = await add(index, store, rec, size=size)
        assert outcome is AddOutcome.STORED
        added[rec.sop_uid] = rec, blob, size
    return added


async def test_locate_and_metadata(index: InstanceIndex, store: int, corpus: Corpus) -> None:
    """Locations in series number, instance number order with what was added; metadata in
    the same order with the stored bytes; both scoped and empty when nothing is there."""
    locs, metas = await index.locate(store, A), await index.metadata(store, A)
    assert [loc.sop_uid for loc in locs] == [f"{A1}.2", f"{A1}.10", f"{A2}.1"]
    for loc, meta in zip(locs, metas, strict=True):
        rec, blob, size = corpus[loc.sop_uid]
        assert (loc.study_uid, loc.series_uid, loc.sop_class_uid, loc.transfer_syntax_uid) == (
            rec.study_uid, rec.series_uid, rec.sop_class_uid, rec.transfer_syntax_uid)
        assert (loc.blob_name, loc.blob_size, loc.bulk) == (blob, size, rec.bulk)
        assert loc.frames == [list(frame) for frame in rec.frames]
        assert (meta.study_uid, meta.series_uid, meta.sop_uid, meta.metadata,
                meta.blob_name) == (rec.study_uid, rec.series_uid, rec.sop_uid, rec.metadata,
                                    blob)
    for scope in [(A1,), (A1, f"{A1}.10"), (A2,), (A2, f"{A2}.1")]:
        expected = [loc.sop_uid for loc in locs if loc.series_uid == scope[0]
                    and scope[-1] in (loc.series_uid, loc.sop_uid)]
        assert [loc.sop_uid for loc in await index.locate(store, A, *scope)] == expected
        assert [m.sop_uid for m in await index.metadata(store, A, *scope)] == expected
    for missing in [("9.9",), (A, f"{B}.1"), (A, A1, f"{A2}.1")]:
        assert await index.locate(store, *missing) == [] == await index.metadata(store, *missing)


def match(tag: int, vr: str, kind: MatchKind, *values: str) -> Match:
    return Match(tag, vr, kind, values)


PN, DA, ONE = 0x00100010, 0x00080020, MatchKind.SINGLE
STUDY_MATCHES = {
    "single": (match(PN, "PN", ONE, "Doe^John"), {A}),
    "single-exact": (match(PN, "PN", ONE, "Doe"), set()),
    "single-date": (match(DA, "DA", ONE, "20240315"), {B}),
    "modalities-in-study": (match(0x00080061, "CS", ONE, "MR"), {A}),
    "uid-list": (match(0x0020000D, "UI", MatchKind.LIST, A, C, "9.9"), {A, C}),
    "wildcard": (match(PN, "PN", MatchKind.WILDCARD, "?oe^*"), {A, B}),
    "wildcard-whole": (match(PN, "PN", MatchKind.WILDCARD, "Smith^Ann?"), {C}),
    "range": (match(DA, "DA", MatchKind.RANGE, "20240101", "20241231"), {A, B}),
    "range-to": (match(DA, "DA", MatchKind.RANGE, "", "20231231"), {C}),
    "range-from": (match(DA, "DA", MatchKind.RANGE, "20240102", ""), {B}),
    "fuzzy": (match(PN, "PN", MatchKind.FUZZY, "Jan"), {B}),
    "fuzzy-any": (match(PN, "PN", MatchKind.FUZZY, "Ann", "Doe"), {A, C}),
    "fuzzy-prefix-only": (match(PN, "PN", MatchKind.FUZZY, "oe"), set()),
}


@pytest.mark.parametrize("case", STUDY_MATCHES)
async def test_search_study_matching(index: InstanceIndex, store: int, corpus: Corpus,
                                     case: str) -> None:
    """Each matching type of PS3.4 C.2.2.2 selects exactly the expected studies."""
    key, expected = STUDY_MATCHES[case]
    assert {r.study_uid for r in await find(index, store, Level.STUDY, key)} == expected


async def test_search_rows(index: InstanceIndex, store: int, corpus: Corpus) -> None:
    """Rows at each level carry attributes and counts, in series and instance number order."""
    rows = {r.study_uid: r for r in await find(index, store, Level.STUDY)}
    a, c = rows.pop(A), rows.pop(C)
    assert list(rows) == [B] and (a.series_uid, a.sop_uid) == (None, None)
    assert (a.study_series, a.study_instances, sorted(a.modalities), sorted(a.sop_classes)) == (
        2, 3, ["CT", "MR"], sorted([CLASSES["CT"], CLASSES["MR"]]))
    assert (c.study_series, c.study_instances, c.modalities, c.sop_classes) == (
        1, 1, ("US",), (CLASSES["US"],))
    assert orjson.loads(a.study_attrs)["00100010"]["Value"] == [{"Alphabetic": "Doe^John"}]
    series = await find(index, store, Level.SERIES, study_uid=A)
    assert [(r.series_uid, r.series_instances, r.study_series, r.study_instances)
            for r in series] == [(A1, 2, 2, 3), (A2, 1, 2, 3)]
    assert orjson.loads(series[1].series_attrs or b"")["00080060"]["Value"] == ["MR"]
    ct = await find(index, store, Level.SERIES, match(0x00080060, "CS", ONE, "CT"))
    assert {(r.study_uid, r.series_uid) for r in ct} == {(A, A1), (B, f"{B}.1")}
    inst = await find(index, store, Level.INSTANCE, study_uid=A, series_uid=A1)
    assert [(r.sop_uid, r.series_instances) for r in inst] == [(f"{A1}.2", 2), (f"{A1}.10", 2)]
    assert orjson.loads(inst[0].instance_attrs or b"")["00200013"]["Value"] == [2]
    tenth = await find(index, store, Level.INSTANCE, match(0x00200013, "IS", ONE, "10"))
    assert [r.sop_uid for r in tenth] == [f"{A1}.10"]
    uids = match(0x00080018, "UI", MatchKind.LIST, f"{A2}.1", f"{C}.1.1")
    assert {r.sop_uid for r in await find(index, store, Level.INSTANCE, uids)} == {
        f"{A2}.1", f"{C}.1.1"}


async def test_search_pages(index: InstanceIndex, store: int, corpus: Corpus) -> None:
    """`limit` and `offset` page through every match once; `more` until the last page."""
    pages = [await index.search(store, Query(Level.STUDY, limit=2, offset=o)) for o in (0, 2, 4)]
    assert [(len(p.rows), p.more) for p in pages] == [(2, True), (1, False), (0, False)]
    assert sorted(r.study_uid for p in pages for r in p.rows) == [A, B, C]
    assert (await index.search(store, Query(Level.STUDY, limit=3))).more is False
    page = await index.search(store, Query(Level.INSTANCE, study_uid=A, limit=1, offset=1))
    assert ([r.sop_uid for r in page.rows], page.more) == ([f"{A1}.10"], True)


async def test_delete(index: InstanceIndex, store: int, corpus: Corpus) -> None:
    """Deleting an instance, series or study returns its blobs, drops series and studies
    left empty and updates counts; deleting nothing returns None."""
    async def series() -> list[tuple[str | None, int, int, int, list[str]]]:
        return [(r.series_uid, r.series_instances, r.study_series, r.study_instances,
                 sorted(r.modalities)) for r in await find(index, store, Level.SERIES)]

    blob = {sop: name for sop, (_, name, _) in corpus.items()}
    others = [(f"{B}.1", 1, 1, 1, ["CT"]), (f"{C}.1", 1, 1, 1, ["US"])]
    assert await index.delete(store, A, A1, f"{A1}.2") == [blob[f"{A1}.2"]]
    assert await index.delete(store, A, A1, f"{A1}.2") is None
    assert await series() == [(A1, 1, 2, 2, ["CT", "MR"]), (A2, 1, 2, 2, ["CT", "MR"]), *others]
    assert await index.delete(store, A, A1, f"{A1}.10") == [blob[f"{A1}.10"]]
    assert await series() == [(A2, 1, 1, 1, ["MR"]), *others]
    assert await index.delete(store, A, A1) is None
    assert await index.delete(store, A, A2) == [blob[f"{A2}.1"]]
    assert await series() == others and await index.locate(store, A) == []
    assert await index.delete(store, A) is None
    assert await index.delete(store, B) == [blob[f"{B}.1.1"]]
    assert {r.study_uid for r in await find(index, store, Level.STUDY)} == {C}


async def test_check_passes_while_the_index_can_be_reached(index: InstanceIndex) -> None:
    await index.check()


async def removed(index: InstanceIndex, names: list[str]) -> None:
    """Check that the removal of `names` is queued and due at once, then mark it done."""
    assert set(names) <= set(await index.due_removals(0, 10_000))
    await index.removals_done(names)
    assert not set(names) & set(await index.due_removals(0, 10_000))


async def test_removals_wait_their_grace_and_come_oldest_first(index: InstanceIndex,
                                                               store: int) -> None:
    """A deleted or replaced instance's blob is queued in the same transaction; it is due
    only once older than the grace asked for, and stays queued until done."""
    names = [(await add(index, store, record("1.2.3", "1.2.3.1", f"1.2.3.1.{n}")))[1]
             for n in range(3)]
    assert await index.due_removals(0, 10) == []
    assert await index.queued_removals() == 0
    await index.delete(store, "1.2.3", "1.2.3.1", "1.2.3.1.0")
    await asyncio.sleep(0.05)
    await index.delete(store, "1.2.3")
    assert await index.due_removals(3600, 10) == []
    assert (await index.due_removals(0, 10))[0] == names[0]
    assert sorted(await index.due_removals(0, 10)) == sorted(names)
    assert await index.due_removals(0, 1) == [names[0]]
    assert await index.queued_removals() == 3  # counted, whoever has claimed them
    await index.removals_done(names[:1])
    assert sorted(await index.due_removals(0, 10)) == sorted(names[1:])
    assert await index.queued_removals() == 2
    assert await index.referenced(names) == set(names[1:])


async def test_instances_are_walked_in_pages_and_parents_astray_found(
        index: InstanceIndex, store: int) -> None:
    """`instances_after` pages through every store's rows; `parents_astray` finds nothing
    wrong with studies and series the index keeps itself (a damaged index: tests/test_verify)."""
    other = (await index.ensure_store("projects/p/locations/l/datasets/d/dicomStores/o",
                                      "full")).id
    added = [await add(index, s, record("1.2.3", f"1.2.3.{s}", f"1.2.3.{s}.{n}"))
             for s in (store, other) for n in range(3)]
    walked, after = [], 0
    while page := await index.instances_after(after, 2):
        assert len(page) <= 2
        walked += page
        after = page[-1].pk
    assert [r.blob_name for r in walked] == [blob for _, blob in added]
    assert {(r.store_id, r.sop_uid) for r in walked} == {
        (s, f"1.2.3.{s}.{n}") for s in (store, other) for n in range(3)}
    assert walked[0].sha256 == hashlib.sha256(b"1.2.3.%d.0" % store).hexdigest()
    assert await index.parents_astray(repair=True) == (0, 0)
    assert await index.stored_sha256(store, f"1.2.3.{store}.1") == hashlib.sha256(
        b"1.2.3.%d.1" % store).hexdigest()
    assert await index.stored_sha256(other, f"1.2.3.{store}.1") is None
    assert len(await index.instances_after(0, 100)) == 6
    of_other = await index.instances_after(walked[0].pk, 100, other)
    assert [r.sop_uid for r in of_other] == [f"1.2.3.{other}.{n}" for n in range(3)]


async def test_referenced(index: InstanceIndex, store: int, corpus: Corpus) -> None:
    """Exactly the pointed-at names, in lists past 1000 names, and not once deleted and
    their removal done (a deleted study gives back the blobs of all its series)."""
    blobs = [blob for _, blob, _ in corpus.values()]
    unknown = [uuid.uuid4().hex for _ in range(1500)]
    names = blobs[:1] + unknown[:700] + blobs[1:3] + unknown[700:] + blobs[3:]
    assert await index.referenced(names) == set(blobs)
    assert await index.referenced(unknown) == set() == await index.referenced([])
    deleted = await index.delete(store, A) or []
    assert sorted(deleted) == sorted(b for sop, (_, b, _) in corpus.items()
                                     if sop.startswith(f"{A}."))
    assert await index.referenced(names) == set(blobs)  # queued: not orphans yet
    await removed(index, deleted)
    assert await index.referenced(names) == set(blobs) - set(deleted)
    assert {r.study_uid for r in await find(index, store, Level.STUDY)} == {B, C}


LOC = "projects/p/locations/l"


async def test_datasets_are_created_once_listed_in_pages_and_deleted_whole(
        index: InstanceIndex) -> None:
    """create_dataset refuses an existing name; list_datasets pages by name within a
    location only; delete_dataset takes its stores and instances and names their blobs."""
    for name in ("b", "a", "c"):
        assert (await index.create_dataset(f"{LOC}/datasets/{name}", "UTC")) is not None
    assert await index.create_dataset(f"{LOC}/datasets/a", "") is None
    await index.create_dataset("projects/p/locations/other/datasets/z", "")
    page = await index.list_datasets(LOC, "", 2)
    assert [d.name for d in page] == [f"{LOC}/datasets/a", f"{LOC}/datasets/b"]
    assert [d.name for d in await index.list_datasets(LOC, page[-1].name, 2)] == [
        f"{LOC}/datasets/c"]
    assert len(await index.list_datasets(LOC, "", -1)) == 3
    assert "projects/p/locations/other/datasets/z" in await index.dataset_names()
    updated = await index.update_dataset(f"{LOC}/datasets/a", "Europe/Paris")
    assert updated is not None and updated.time_zone == "Europe/Paris"
    store = await index.create_store(f"{LOC}/datasets/a/dicomStores/s", "full", '{"x": 1}')
    assert store is not None and store.config == '{"x": 1}'
    _, blob = await add(index, store.id, record("1.2.3", "1.2.3.1", "1.2.3.1.1"))
    assert await index.delete_dataset(f"{LOC}/datasets/a") == [blob]
    assert await index.get_dataset(f"{LOC}/datasets/a") is None
    assert await index.get_store(f"{LOC}/datasets/a/dicomStores/s") is None
    await removed(index, [blob])
    assert await index.referenced([blob]) == set()
    assert await index.delete_dataset(f"{LOC}/datasets/a") is None


async def test_stores_are_listed_updated_and_their_ids_never_reused(
        index: InstanceIndex) -> None:
    dataset = f"{LOC}/datasets/d"
    await index.create_dataset(dataset, "")
    first = await index.create_store(f"{dataset}/dicomStores/s1", "full", "{}")
    assert first is not None
    assert await index.create_store(f"{dataset}/dicomStores/s1", "full", "{}") is None
    await index.create_store(f"{dataset}/dicomStores/s2", "full", "{}")
    assert [s.name.rsplit("/", 1)[1] for s in await index.list_stores(dataset, "", 10)] == [
        "s1", "s2"]
    changed = await index.update_store(f"{dataset}/dicomStores/s1", '{"labels": {"a": "b"}}')
    assert changed is not None and changed.config == '{"labels": {"a": "b"}}'
    assert await index.update_store(f"{dataset}/dicomStores/none", "{}") is None
    _, blob = await add(index, first.id, record("1.2.3", "1.2.3.1", "1.2.3.1.1"))
    assert await index.delete_store(f"{dataset}/dicomStores/s1") == [blob]
    assert await index.delete_store(f"{dataset}/dicomStores/s1") is None
    again = await index.create_store(f"{dataset}/dicomStores/s1", "full", "{}")
    assert again is not None and again.id != first.id
    assert await index.locate(again.id, "1.2.3") == []
    newest = await index.create_store(f"{dataset}/dicomStores/s3", "full", "{}")
    assert newest is not None and newest.id not in (first.id, again.id)


async def test_operations_are_kept_per_dataset(index: InstanceIndex) -> None:
    ops = [await index.add_operation(f"{LOC}/datasets/d", f'{{"n": {i}}}') for i in range(3)]
    await index.add_operation(f"{LOC}/datasets/other", "{}")
    assert len({op.id for op in ops}) == 3
    found = await index.get_operation(f"{LOC}/datasets/d", ops[1].id)
    assert found is not None and found.body == '{"n": 1}'
    assert await index.get_operation(f"{LOC}/datasets/other", ops[1].id) is None
    listed = await index.list_operations(f"{LOC}/datasets/d", ops[0].id, 10)
    assert [op.body for op in listed] == ['{"n": 1}', '{"n": 2}']


async def test_a_job_is_held_by_one_index_until_its_claim_lapses(
        index_factory: IndexFactory, tmp_path: Path) -> None:
    """Two indexes over one storage, as two replicas: the job is the claimer's while it
    saves; once it stops (it died), the other takes the job over with its last progress,
    and the first's saves are refused from then on. A finished job is never claimed."""
    first, second = index_factory(tmp_path), index_factory(tmp_path)
    await first.migrate()
    dataset = f"{LOC}/datasets/d"
    try:
        finished = await first.add_operation(dataset, '{"done": true}')
        op = await first.add_operation(dataset, '{"n": 0}', '{"cursor": 0}')
        assert await first.claim_job(60) == JobRow(op.id, dataset, '{"n": 0}', '{"cursor": 0}',
                                                   1)
        assert await second.claim_job(60) is None
        assert await first.claim_job(60) is None  # its holder runs it once at a time too
        assert await first.save_job(op.id, '{"n": 1}', '{"cursor": 1}') is False
        await asyncio.sleep(0.3)
        assert await second.claim_job(0.2) == JobRow(op.id, dataset, '{"n": 1}',
                                                     '{"cursor": 1}', 2)
        assert await first.save_job(op.id, '{"n": 9}', '{"cursor": 9}') is None
        await second.cancel_job(f"{LOC}/datasets/other", op.id)  # not that dataset's
        assert await second.save_job(op.id, '{"n": 2}', '{"cursor": 2}', release=True) is False
        assert await first.claim_job(60) == JobRow(op.id, dataset, '{"n": 2}',
                                                   '{"cursor": 2}', 3)  # let go: at once
        assert await first.save_job(op.id, '{"n": 2}', '{"cursor": 2}', release=True) is False
        assert await second.claim_job(60) is not None
        await first.cancel_job(dataset, op.id)
        assert await second.save_job(op.id, '{"n": 3}', None) is True
        saved = await first.get_operation(dataset, op.id)
        assert saved is not None and saved.body == '{"n": 3}'
        await first.cancel_job(dataset, finished.id)  # finished: nothing to stop
        await asyncio.sleep(0.3)
        assert await first.claim_job(0.2) is None and await second.claim_job(0.2) is None
        assert await second.save_job(op.id, "{}", None) is None  # let go when it finished
    finally:
        await first.close()
        await second.close()


async def test_jobs_claimed_at_once_go_one_to_each(index_factory: IndexFactory,
                                                  tmp_path: Path) -> None:
    indexes = [index_factory(tmp_path) for _ in range(3)]
    await indexes[0].migrate()
    try:
        ops = [await indexes[0].add_operation(f"{LOC}/datasets/d", "{}", f'{{"j": {i}}}')
               for i in range(12)]
        claimed = await asyncio.gather(*(index.claim_job(60) for index in indexes * 5))
        ids = [job.id for job in claimed if job is not None]
        assert sorted(ids) == [op.id for op in ops]
    finally:
        for index in indexes:
            await index.close()


async def test_metrics_count_and_size_a_store_study_and_series(index: InstanceIndex,
                                                               store: int) -> None:
    assert await index.metrics(store) == Metrics(0, 0, 0, 0, 0)
    await add(index, store, record("1.2.3", "1.2.3.1", "1.2.3.1.1"), size=100)
    await add(index, store, record("1.2.3", "1.2.3.1", "1.2.3.1.2"), size=200)
    await add(index, store, record("1.2.3", "1.2.3.2", "1.2.3.2.1"), size=400)
    await add(index, store, record("1.2.4", "1.2.4.1", "1.2.4.1.1"), size=800)
    whole = await index.metrics(store)
    assert (whole.studies, whole.series, whole.instances, whole.blob_bytes) == (2, 3, 4, 1500)
    assert whole.structured_bytes > 0
    study = await index.metrics(store, "1.2.3")
    assert (study.studies, study.series, study.instances, study.blob_bytes) == (1, 2, 3, 700)
    series = await index.metrics(store, "1.2.3", "1.2.3.1")
    assert (series.series, series.instances, series.blob_bytes) == (1, 2, 300)
    assert (await index.metrics(store, "9.9")).instances == 0


async def test_replace_instance_swaps_the_row_and_names_the_old_blob(index: InstanceIndex,
                                                                    store: int) -> None:
    rec = record("1.2.3", "1.2.3.1", "1.2.3.1.1")
    _, old = await add(index, store, rec, "a" * 64)
    assert await index.replace_instance(store, rec, "f" * 32, 10, "a" * 64) == (
        AddOutcome.DUPLICATE, None)
    outcome, replaced = await index.replace_instance(store, rec, "e" * 32, 20, "b" * 64)
    assert (outcome, replaced) == (AddOutcome.STORED, old)
    [found] = await index.locate(store, "1.2.3")
    assert (found.blob_name, found.blob_size) == ("e" * 32, 20)
    await removed(index, [old])
    assert await index.referenced([old, "e" * 32]) == {"e" * 32}
    await add(index, store, record("1.2.3", "1.2.3.1", "1.2.3.1.2"))  # the series stays
    moved = record("1.2.4", "1.2.3.1", "1.2.3.1.1")  # its series belongs to another study
    assert await index.replace_instance(store, moved, "d" * 32, 30, "c" * 64) == (
        AddOutcome.SERIES_CONFLICT, None)
    kept = await index.locate(store, "1.2.3")  # the refused replacement changed nothing
    assert [k.blob_name for k in kept][0] == "e" * 32 and len(kept) == 2
    assert await index.replace_instance(store, record("1.2.5", "1.2.5.1", "1.2.5.1.1"),
                                        "c" * 32, 5, "d" * 64) == (AddOutcome.STORED, None)


async def test_policies_are_set_replaced_and_read_back(index: InstanceIndex) -> None:
    resource = f"{LOC}/datasets/d"
    assert await index.get_policy(resource) is None
    await index.set_policy(resource, '{"bindings": []}')
    await index.set_policy(resource, '{"bindings": [1]}')
    assert await index.get_policy(resource) == '{"bindings": [1]}'
    assert await index.get_policy(f"{LOC}/datasets/other") is None
