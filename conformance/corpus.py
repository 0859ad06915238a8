"""The objects the suite stores: a generated CT series and re-UID'd pydicom test files.

Every call mints new UIDs and a new patient, so runs never collide on a server that refuses to
store different content under an existing SOP Instance UID.
"""

from __future__ import annotations

import uuid
import warnings
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from conformance.wire import JsonDataset
from tests.dataset_factories import ct_datasets

CT_SLICES = 10
CT_SIZE = 32

# pydicom's bundled files (never downloaded), one series each in study B.
BUNDLED = (
    "CT_small.dcm",  # explicit VR little endian, private OB/OW elements
    "MR_small.dcm",  # a second modality in the study
    "rtdose.dcm",  # 15 native frames of 32-bit doses, re-encoded in explicit VR (see _reuid)
    "SC_rgb_rle_2frame.dcm",  # RLE Lossless, 2 RGB frames
    "examples_ybr_color.dcm",  # JPEG Baseline, 30 frames
)


@dataclass(frozen=True)
class Instance:
    """One stored object: its Part 10 bytes, the parsed header and its UIDs."""

    name: str
    data: bytes
    dataset: Dataset = field(repr=False, compare=False)

    @property
    def study(self) -> str:
        return str(self.dataset.StudyInstanceUID)

    @property
    def series(self) -> str:
        return str(self.dataset.SeriesInstanceUID)

    @property
    def sop(self) -> str:
        return str(self.dataset.SOPInstanceUID)

    @property
    def sop_class(self) -> str:
        return str(self.dataset.SOPClassUID)

    @property
    def path(self) -> str:
        """The instance's path below the DICOMweb root (PS3.18 10.4.1.1)."""
        return f"studies/{self.study}/series/{self.series}/instances/{self.sop}"


@dataclass(frozen=True)
class Corpus:
    """Study A: a generated CT series. Study B: one series per bundled file.

    Study A has StudyDate 20240315 and patient `{tag}^ALPHA`; study B 20230601 and `{tag}^BRAVO`.
    """

    tag: str
    ct: tuple[Instance, ...]
    bundled: dict[str, Instance]

    @property
    def all(self) -> list[Instance]:
        return [*self.ct, *self.bundled.values()]

    @property
    def study_a(self) -> str:
        return self.ct[0].study

    @property
    def study_b(self) -> str:
        return next(iter(self.bundled.values())).study

    def named(self, name: str) -> Instance:
        """An instance by name: `ct01`..`ct10` or a bundled file's name."""
        return next(i for i in self.all if i.name == name)


@dataclass(frozen=True)
class Stored:
    """A corpus as a test module's STOW left it, with that request's response."""

    corpus: Corpus
    status: int
    content_type: str
    response: JsonDataset


def build_corpus() -> Corpus:
    """A fresh corpus: new UIDs, new patient names and IDs (PatientID `{tag}-A` / `{tag}-B`)."""
    tag = "CONF" + uuid.uuid4().hex[:10].upper()
    ct = tuple(_ct_series(tag))
    study_b = generate_uid()
    bundled = {name: _reuid(name, tag, study_b) for name in BUNDLED}
    return Corpus(tag=tag, ct=ct, bundled=bundled)


def _ct_series(tag: str) -> list[Instance]:
    datasets = ct_datasets(
        CT_SLICES, CT_SIZE, f"{tag}^ALPHA", PatientID=f"{tag}-A", AccessionNumber=f"{tag[-8:]}A",
        StudyDescription="Conformance phantom")
    return [_encode(f"ct{i + 1:02d}", ds) for i, ds in enumerate(datasets)]


def _reuid(name: str, tag: str, study: str) -> Instance:
    """A bundled file under new Study/Series/SOP Instance UIDs and study B's patient."""
    path = get_testdata_file(name, download=False)
    if path is None:
        raise FileNotFoundError(f"pydicom test file {name} is not installed")
    ds = dcmread(Path(path))
    sop = generate_uid()
    ds.SOPInstanceUID = sop
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = f"{tag}^BRAVO"
    ds.PatientID = f"{tag}-B"
    ds.PatientBirthDate = "19800202"
    ds.PatientSex = "F"
    ds.StudyDate = "20230601"
    ds.StudyTime = "093000"
    ds.StudyID = "2"
    ds.ReferringPhysicianName = "Referrer^Rita"
    ds.AccessionNumber = f"{tag[-8:]}B"
    ds.StudyDescription = "Conformance bundled files"
    if ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian:
        # Any server must return Explicit VR Little Endian by default (PS3.18 8.7.3.4); storing
        # it that way keeps default-syntax requests free of transcoding, which crashes
        # Orthanc 1.10 for this file and would take the rest of a run down with it.
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return _encode(name, ds)


def _encode(name: str, ds: Dataset) -> Instance:
    buffer = BytesIO()
    with warnings.catch_warnings():
        # rtdose.dcm carries over-long example UIDs in its sequences: pydicom's warning about
        # them concerns the test file, not the server under test.
        warnings.simplefilter("ignore", UserWarning)
        ds.save_as(buffer, enforce_file_format=True)
        data = buffer.getvalue()
        parsed = dcmread(BytesIO(data))
    return Instance(name=name, data=data, dataset=parsed)


# pydicom's MR_small.dcm (64×64, signed 16-bit) in three lossless compressed syntaxes, with
# identical pixels; stored by conformance/test_transcoding.py next to its corpus.
COMPRESSED = (
    "MR_small_jp2klossless.dcm",  # JPEG 2000 Image Compression (Lossless Only), .4.90
    "MR_small_RLE.dcm",  # RLE Lossless, .5
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS Lossless, .4.80
)


def build_compressed(corpus: Corpus) -> dict[str, Instance]:
    """The COMPRESSED files re-UID'd into `corpus`'s study B, one new series each."""
    return {name: _reuid(name, corpus.tag, corpus.study_b) for name in COMPRESSED}
