"""Synthetic CT series, pre-encoded to Part 10 bytes (Explicit VR Little Endian) before timing."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from io import BytesIO

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

ROWS = COLUMNS = 512
SLICE_BANK = 16  # distinct pixel slices cycled through, so generation stays cheap
HU_OFFSET = 1024  # stored value = HU + 1024, undone by RescaleIntercept -1024


@dataclass(frozen=True)
class Instance:
    """One encoded instance, its identifying UIDs, and its one frame's native pixel bytes
    (little-endian int16, Rows x Columns), which transcoded frames must decode back to."""

    study_uid: str
    series_uid: str
    sop_uid: str
    data: bytes
    frame: bytes


@dataclass(frozen=True)
class Series:
    """A pre-encoded series of one study."""

    patient_name: str
    study_uid: str
    series_uid: str
    rows: int
    columns: int
    instances: tuple[Instance, ...]

    @property
    def total_bytes(self) -> int:
        return sum(len(i.data) for i in self.instances)

    @property
    def frame_bytes(self) -> int:
        """Size of one native 16-bit frame."""
        return self.rows * self.columns * 2


def new_run_id() -> str:
    """A short random id that keeps names of repeated runs apart (fixed length: no prefix clash)."""
    return secrets.token_hex(4).upper()


def _phantom(rows: int, columns: int, z: float, rng: np.random.Generator) -> bytes:
    """An axial slice in HU: body ellipse, two lungs, a vertebra, and scanner noise."""
    y, x = np.mgrid[-1 : 1 : rows * 1j, -1 : 1 : columns * 1j]
    hu = np.full((rows, columns), -1000.0)
    body = (x / (0.85 + 0.03 * np.sin(z))) ** 2 + (y / 0.62) ** 2 < 1
    hu[body] = 40.0
    for cx in (-0.38, 0.38):
        hu[((x - cx) / 0.28) ** 2 + ((y + 0.05) / 0.4) ** 2 < 1] = -820.0
    hu[(x / 0.12) ** 2 + ((y - 0.42) / 0.1) ** 2 < 1] = 750.0
    hu += rng.normal(0.0, 12.0, hu.shape)
    stored: bytes = np.clip(hu + HU_OFFSET, 0, 4095).astype("<i2").tobytes()
    return stored


class CTFactory:
    """Builds CT series with fresh UIDs; pixel slices are computed once and reused."""

    def __init__(self, rows: int = ROWS, columns: int = COLUMNS) -> None:
        rng = np.random.default_rng(1234)
        self.rows = rows
        self.columns = columns
        self._slices = [_phantom(rows, columns, z / 3.0, rng) for z in range(SLICE_BANK)]

    def series(self, count: int, patient_name: str, patient_id: str) -> Series:
        """Encode `count` instances of a new study/series for the given patient."""
        study_uid, series_uid = generate_uid(), generate_uid()
        ds = self._template(patient_name, patient_id, study_uid, series_uid)
        instances = []
        for index in range(count):
            sop_uid = generate_uid()
            z = -100.0 + 2.5 * index
            ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
            ds.SOPInstanceUID = sop_uid
            ds.InstanceNumber = index + 1
            ds.ImagePositionPatient = [-250.0, -250.0, z]
            ds.SliceLocation = z
            frame = self._slices[index % SLICE_BANK]
            ds.PixelData = frame
            buffer = BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            instances.append(Instance(study_uid, series_uid, sop_uid, buffer.getvalue(), frame))
        return Series(
            patient_name, study_uid, series_uid, self.rows, self.columns, tuple(instances)
        )

    def _template(
        self, patient_name: str, patient_id: str, study_uid: str, series_uid: str
    ) -> Dataset:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = CTImageStorage
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240102"
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
        ds.AccessionNumber = study_uid[-12:]
        ds.Modality = "CT"
        ds.Manufacturer = "PACS-BENCH"
        ds.ReferringPhysicianName = "REFERRER^BENCH"
        ds.StudyDescription = "CT CHEST"
        ds.SeriesDescription = "AXIAL 2.5mm"
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = "19600101"
        ds.PatientSex = "O"
        ds.BodyPartExamined = "CHEST"
        ds.SliceThickness = 2.5
        ds.KVP = 120
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = 2
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.FrameOfReferenceUID = generate_uid()
        ds.PositionReferenceIndicator = ""
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = self.rows
        ds.Columns = self.columns
        ds.PixelSpacing = [500.0 / self.rows, 500.0 / self.columns]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        ds.RescaleIntercept = -HU_OFFSET
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        return ds
