"""The scale benchmark's archive: a fixed plan of patients, studies and series (the same on
every run, so a partly filled archive can be continued), each instance encoded in memory
(a realistic CT, MR or PET header and a 16x16 frame), and the loader that stores them through
the server's own ingest code (`store_staged`), without HTTP, in several processes at once."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import date, timedelta
from multiprocessing.queues import Queue
from queue import Empty

import anyio
from pydicom.charset import convert_encodings
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
    generate_uid,
)

from pacs.dicom.pydicom_setup import configure_pydicom
from pacs.service.archive import Archive, open_archive
from pacs.service.staging import stage_all
from pacs.service.store_instances import StoreOutcome, store_staged
from pacs.service.stores import StoreContext
from pacs.settings import Settings
from storage.backends import Placement, open_index
from storage.query import Level, Query

SERIES_SIZES = (55, 40, 20, 10)  # instances per series of every study
STUDY_SIZE = sum(SERIES_SIZES)  # 125: 8,000 studies make a million instances
MODALITY_CYCLE = "CT MR CT PT CT MR CT CT MR CT".split()  # by study index: 50 % CT, 30 % MR
# Surnames by patient index (p * 7 % 61): SMITH and GOLDSMITH make *smi* match 2 in 61 patients.
SURNAMES = (
    "SMITH JOHNSON WILLIAMS BROWN JONES GARCIA MILLER DAVIS RODRIGUEZ MARTINEZ HERNANDEZ LOPEZ "
    "GONZALEZ WILSON ANDERSON THOMAS TAYLOR MOORE JACKSON MARTIN LEE PEREZ THOMPSON WHITE "
    "HARRIS SANCHEZ CLARK RAMIREZ LEWIS ROBINSON WALKER YOUNG ALLEN KING WRIGHT SCOTT TORRES "
    "NGUYEN HILL FLORES GREEN ADAMS NELSON BAKER HALL RIVERA CAMPBELL MITCHELL CARTER ROBERTS "
    "MÜLLER SCHMIDT SCHNEIDER FISCHER WEBER MEYER WAGNER BECKER GOLDSMITH HOFFMANN KOCH"
).split()
GIVEN_NAMES = "JAMES MARY ROBERT PATRICIA JOHN JENNIFER MICHAEL LINDA DAVID ELIZABETH".split()
DESCRIPTIONS = {  # study descriptions and body parts
    "CT": (
        ("CT CHEST W CONTRAST", "CHEST"),
        ("CT ABDOMEN PELVIS", "ABDOMEN"),
        ("CT HEAD WO CONTRAST", "HEAD"),
    ),
    "MR": (
        ("MR BRAIN WO W CONTRAST", "BRAIN"),
        ("MR KNEE LEFT", "KNEE"),
        ("MR LUMBAR SPINE", "LSPINE"),
    ),
    "PT": (("PET CT WHOLE BODY", "WHOLEBODY"),),
}
SERIES_NAMES = {
    "CT": ("AXIAL 2.5mm", "CORONAL 3mm", "SAGITTAL 3mm", "SCOUT"),
    "MR": ("T1 AXIAL", "T2 AXIAL", "FLAIR CORONAL", "LOCALIZER"),
    "PT": ("CT AC 3mm", "PET AC", "PET NAC", "CT TOPOGRAM"),
}
SOP_CLASSES = {
    "CT": CTImageStorage,
    "MR": MRImageStorage,
    "PT": PositronEmissionTomographyImageStorage,
}
FRAME = bytes(range(256)) * 2  # 16 x 16 x 16-bit
UID_SEED = "pacs-scale-benchmark-1"  # change it and every UID changes
OWN_TAGS = (0x00080018, 0x00200013, 0x00200032, 0x00201041)  # an instance's own elements
MEDIA_SOP_UID = 0x00020003
PREAMBLE = bytes(128) + b"DICM"
LOCKED_RETRIES = 3  # stores of one instance that may find SQLite locked past its busy timeout
PROGRESS_EVERY = 250  # instances a loader process stores between progress messages


@dataclass(frozen=True)
class SeriesPlan:
    """One series of a planned study."""

    uid: str
    number: int
    modality: str
    description: str
    size: int


@dataclass(frozen=True)
class StudyPlan:
    """One planned study, with its patient."""

    index: int
    uid: str
    patient_id: str
    patient_name: str
    accession: str
    description: str
    body_part: str
    series: tuple[SeriesPlan, ...]


def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=[UID_SEED, *map(str, parts)])


def patient_of(study: int) -> int:
    """Patients have one or two studies (five studies to three patients)."""
    return study * 3 // 5


def study_plan(index: int, uid: str | None = None) -> StudyPlan:
    """The `index`-th study of the archive (0-based), the same on every run; or, given a
    `uid`, a study like it with other UIDs."""
    uid = uid or _uid(index)
    patient = patient_of(index)
    modality = MODALITY_CYCLE[index % len(MODALITY_CYCLE)]
    names = SERIES_NAMES[modality]
    series = tuple(
        SeriesPlan(
            _uid(uid, number),
            number + 1,
            "CT" if modality == "PT" and names[number].startswith("CT") else modality,
            names[number],
            size,
        )
        for number, size in enumerate(SERIES_SIZES)
    )
    description, body_part = DESCRIPTIONS[modality][index % len(DESCRIPTIONS[modality])]
    return StudyPlan(
        index,
        uid,
        f"PID{patient:07d}",
        f"{SURNAMES[patient * 7 % len(SURNAMES)]}^{GIVEN_NAMES[patient % len(GIVEN_NAMES)]}",
        f"A{index:09d}",
        description,
        body_part,
        series,
    )


def sop_uid(study: StudyPlan, series: SeriesPlan, number: int) -> str:
    """The SOP Instance UID of instance `number` (1-based) of `series`."""
    return _uid(series.uid, number)


def planned_instances(study: StudyPlan, count: int) -> Iterator[tuple[SeriesEncoder, int]]:
    """The first `count` instances of `study`: (its series' encoder, instance number)."""
    for series in study.series:
        if count <= 0:
            return
        encoder = SeriesEncoder(study, series)
        for number in range(1, min(series.size, count) + 1):
            yield encoder, number
        count -= series.size


def study_counts(instances: int) -> list[int]:
    """How many instances of each study the first `instances` of the archive hold."""
    full, rest = divmod(instances, STUDY_SIZE)
    return [STUDY_SIZE] * full + ([rest] if rest else [])


class SeriesEncoder:
    """Part 10 bytes (Explicit VR Little Endian) of the instances of one series, exactly as
    pydicom's `save_as` writes them, but fast: the series' elements are encoded once, and only
    each instance's own elements (SOP Instance UID, number, position) per instance."""

    def __init__(self, study: StudyPlan, series: SeriesPlan) -> None:
        self.study, self.series = study, series
        ds = _header(study, series)
        self._encodings = convert_encodings(ds.SpecificCharacterSet)
        meta = {int(elem.tag): _encoded(elem, self._encodings) for elem in ds.file_meta}
        self._meta = [
            b"".join(v for t, v in meta.items() if t < MEDIA_SOP_UID),
            b"".join(v for t, v in meta.items() if t > MEDIA_SOP_UID),
        ]
        bounds = (0, *OWN_TAGS, 0xFFFFFFFF)
        self._segments = [
            b"".join(_encoded(elem, self._encodings) for elem in ds if low < elem.tag < high)
            for low, high in zip(bounds, bounds[1:], strict=False)
        ]

    def encode(self, number: int) -> bytes:
        """Instance `number` (1-based) of the series."""
        sop = sop_uid(self.study, self.series, number)
        z = -200.0 + 2.5 * number
        own = [
            DataElement(0x00080018, "UI", sop),
            DataElement(0x00200013, "IS", number),
            DataElement(0x00200032, "DS", [-250.0, -250.0, z]),
            DataElement(0x00201041, "DS", z),
        ]
        sop_element = _encoded(DataElement(MEDIA_SOP_UID, "UI", sop), self._encodings)
        meta = self._meta[0] + sop_element + self._meta[1]
        parts = [
            PREAMBLE,
            _encoded(DataElement(0x00020000, "UL", len(meta)), self._encodings),
            meta,
            self._segments[0],
        ]
        for element, segment in zip(own, self._segments[1:], strict=True):
            parts += [_encoded(element, self._encodings), segment]
        return b"".join(parts)


def _encoded(element: DataElement, encodings: list[str]) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_data_element(fp, element, encodings)
    return fp.getvalue()


def _header(study: StudyPlan, series: SeriesPlan) -> Dataset:
    """Everything but the instance's own attributes."""
    sop_class = SOP_CLASSES[series.modality]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "PACS-SCALE-1"
    patient = patient_of(study.index)
    day = (date(2015, 1, 1) + timedelta(days=study.index * 37 % 3650)).strftime("%Y%m%d")
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = sop_class
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = day
    ds.StudyTime = f"{8 + study.index % 10:02d}{study.index % 60:02d}00"
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = ds.StudyTime
    ds.AccessionNumber = study.accession
    ds.Modality = series.modality
    ds.Manufacturer = "PACS-BENCH"
    ds.InstitutionName = "SCALE GENERAL HOSPITAL"
    ds.ReferringPhysicianName = f"REFERRER^{GIVEN_NAMES[study.index % len(GIVEN_NAMES)]}"
    ds.StationName = f"{series.modality}0{study.index % 4 + 1}"
    ds.StudyDescription = study.description
    ds.SeriesDescription = series.description
    ds.ManufacturerModelName = f"BENCH {series.modality} 3000"
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = f"{1930 + patient % 70}{patient % 12 + 1:02d}{patient % 28 + 1:02d}"
    ds.PatientSex = "FM"[patient % 2]
    ds.PatientAge = f"{40 + patient % 50:03d}Y"
    ds.BodyPartExamined = study.body_part
    ds.ProtocolName = study.description
    ds.SliceThickness = 2.5
    if series.modality == "MR":
        ds.MagneticFieldStrength = 1.5
        ds.RepetitionTime = 500.0
        ds.EchoTime = 15.0
    else:
        ds.KVP = 120
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study.uid
    ds.SeriesInstanceUID = series.uid
    ds.StudyID = str(study.index + 1)
    ds.SeriesNumber = series.number
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.FrameOfReferenceUID = _uid(study.uid, "frame-of-reference")
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 16
    ds.PixelSpacing = [0.9765625, 0.9765625]
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.add_new(0x7FE00010, "OW", FRAME)  # Pixel Data
    return ds


def loaded_counts(where: Placement) -> dict[str, int]:
    """Instances per study UID in the archive's index (empty if it has none); an embedded
    index is read as it is, without opening the archive."""
    if where.index_url:
        return asyncio.run(_counted(where))
    if not where.sqlite_path.exists():
        return {}
    uri = f"{where.sqlite_path.resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        return dict(conn.execute("SELECT study_uid, n_instances FROM studies"))


async def _counted(where: Placement) -> dict[str, int]:
    index = open_index(where)
    try:
        await index.migrate()
        store = await index.ensure_store(Settings().default_store, "full")
        counts: dict[str, int] = {}
        while True:
            page = await index.search(store.id, Query(Level.STUDY, limit=10_000,
                                                      offset=len(counts)))
            counts.update((row.study_uid, row.study_instances) for row in page.rows)
            if not page.more:
                return counts
    finally:
        await index.close()


@dataclass(frozen=True)
class LoadReport:
    """What a load stored, how fast, and how often SQLite's busy timeout ran out (the store
    was then made again)."""

    instances: int
    seconds: float
    locked_retries: int

    @property
    def rate(self) -> float:
        return self.instances / max(self.seconds, 1e-9)


Message = tuple[str, int | str]  # ("stored", count), ("locked", 1), ("done", 0), ("failed", why)


def load(
    where: Placement,
    work: list[tuple[int, int]],
    processes: int,
    concurrency: int,
    niceness: int,
    report_every: int,
) -> LoadReport:
    """Store the instances `work` names with `processes` loader processes, each keeping
    `concurrency` stores in flight; print the rate every `report_every` instances."""
    if not work:
        return LoadReport(0, 0.0, 0)
    total = sum(want for _, want in work)
    context = multiprocessing.get_context("spawn")
    progress: Queue[Message] = context.Queue()
    workers = [
        context.Process(
            target=_worker,
            args=(where, work[p::processes], concurrency, niceness, progress),
            daemon=True,
        )
        for p in range(processes)
    ]
    for worker in workers:
        worker.start()
    start = chunk_start = time.perf_counter()
    stored = chunk = locked = 0
    running = len(workers)
    while running:
        try:
            kind, value = progress.get(timeout=5)
        except Empty:
            if not any(w.is_alive() for w in workers):
                raise RuntimeError("the loader processes exited without finishing") from None
            continue
        if kind == "failed":
            raise RuntimeError(f"a loader process failed: {value}")
        running -= kind == "done"
        locked += kind == "locked"
        if kind == "stored" and isinstance(value, int):
            stored, chunk = stored + value, chunk + value
        if chunk >= report_every or (chunk and not running):
            now = time.perf_counter()
            print(
                f"  loaded {stored:,}/{total:,}: {chunk / (now - chunk_start):.0f} "
                f"instances/s over the last {chunk:,}",
                file=sys.stderr,
                flush=True,
            )
            chunk_start, chunk = now, 0
    for worker in workers:
        worker.join()
    return LoadReport(stored, time.perf_counter() - start, locked)


def _worker(
    where: Placement,
    work: list[tuple[int, int]],
    concurrency: int,
    niceness: int,
    progress: Queue[Message],
) -> None:
    """One loader process, storing its share of the studies."""
    os.nice(niceness)
    configure_pydicom()
    try:
        asyncio.run(_fill(where, work, concurrency, progress))
    except BaseException as exc:
        progress.put(("failed", f"{type(exc).__name__}: {exc}"))
        raise
    progress.put(("done", 0))


async def _fill(
    where: Placement, work: list[tuple[int, int]], concurrency: int, progress: Queue[Message]
) -> None:
    settings = Settings(data_dir=where.data_dir, index_url=where.index_url,
                        blobs_url=where.blobs_url)
    archive = await open_archive(settings)
    try:
        store = await archive.stores.get(settings.default_store)
        jobs = (
            (encoder, number)
            for index, want in work
            for encoder, number in planned_instances(study_plan(index), want)
        )
        done = 0

        async def run() -> None:
            nonlocal done
            for encoder, number in jobs:
                data = encoder.encode(number)
                for attempt in range(LOCKED_RETRIES + 1):
                    try:
                        await _store(archive, store, data)
                        break
                    except sqlite3.OperationalError as exc:
                        if "locked" not in str(exc) or attempt == LOCKED_RETRIES:
                            raise
                        progress.put(("locked", 1))
                done += 1
                if done % PROGRESS_EVERY == 0:
                    progress.put(("stored", PROGRESS_EVERY))

        await asyncio.gather(*(run() for _ in range(concurrency)))
        progress.put(("stored", done % PROGRESS_EVERY))
    finally:
        await archive.close()


async def _store(archive: Archive, store: StoreContext, data: bytes) -> None:
    """Store one instance as STOW does (stage, then `store_staged`); raise if it is not."""
    staged = await anyio.to_thread.run_sync(stage_all, archive.blobs, [data])
    outcome = StoreOutcome()
    await store_staged(archive, store, staged, outcome)
    if not outcome.stored:
        raise RuntimeError(f"{outcome.sop_uid}: {outcome.detail}")
