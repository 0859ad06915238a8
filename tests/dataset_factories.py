"""Test data: pydicom's bundled files (never downloaded) and generated series."""

from io import BytesIO
from pathlib import Path

import numpy as np
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

# pydicom files covering the syntaxes and shapes the archive must keep byte for byte.
CORPUS = (
    "CT_small.dcm",  # CT, explicit VR little endian, private OB/OW bulk data
    "MR_small.dcm",  # MR
    "MR_small_implicit.dcm",  # implicit VR little endian (shares MR_small's SOP Instance UID)
    "MR_small_bigendian.dcm",  # explicit VR big endian
    "rtdose.dcm",  # 15-frame native multi-frame
    "MR_small_RLE.dcm",  # RLE Lossless
    "SC_rgb_rle_2frame.dcm",  # RLE, 2 frames, RGB
    "JPEG2000.dcm",  # JPEG 2000
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless
    "JPEG-lossy.dcm",  # JPEG extended
    "SC_rgb_jpeg.dcm",  # JPEG baseline (dataset in implicit VR despite its syntax)
    "examples_ybr_color.dcm",  # JPEG baseline, 30 frames, Basic Offset Table
    "liver_1frame.dcm",  # bigger native image
    "rtplan.dcm",  # no pixel data, sequences
    "waveform_ecg.dcm",  # waveform bulk data inside sequences
)


def instance_path(ds: Dataset) -> str:
    """The instance's WADO-RS path below a DICOMweb root."""
    return (f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}")


def corpus_path(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    assert path is not None, name
    return Path(path)


def ct_series(count: int = 100, size: int = 64, patient: str = "SERIES^GENERATED",
              study_uid: str | None = None, **attributes: object) -> list[bytes]:
    """A CT series of `count` slices of `size`² int16 pixels, as Part 10 bytes."""
    files = []
    for ds in ct_datasets(count, size, patient, study_uid, **attributes):
        out = BytesIO()
        ds.save_as(out, enforce_file_format=True)
        files.append(out.getvalue())
    return files


def edited(data: bytes, **changes: object) -> bytes:
    """`data` re-encoded with `changes` applied (keyword=value; None deletes the attribute)."""
    ds = dcmread(BytesIO(data))
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    out = BytesIO()
    ds.save_as(out)
    return out.getvalue()


def ct_datasets(count: int, size: int, patient: str, study_uid: str | None = None,
                **attributes: object) -> list[Dataset]:
    """The datasets of `ct_series`; `attributes` (keyword=value) override the defaults."""
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    frame_of_reference = generate_uid()
    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - size / 2, xx - size / 2)
    datasets = []
    for i in range(count):
        ds = new_instance(CTImageStorage)
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_of_reference
        ds.PatientName = patient
        ds.PatientID = "GEN-0001"
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "O"
        ds.StudyDate = "20240315"
        ds.StudyTime = "101500"
        ds.AccessionNumber = "ACC0001"
        ds.StudyDescription = "Generated phantom"
        ds.ReferringPhysicianName = "Referrer^Rita"
        ds.StudyID = "1"
        ds.Modality = "CT"
        ds.SeriesNumber = 2
        ds.SeriesDescription = "Axial phantom"
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(i)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.5, 0.5]
        ds.SliceThickness = 1.0
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = size
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        sphere = np.where(radius < size / 3 - abs(i - count / 2) / 4, 1064, 24)
        ds.PixelData = (sphere + i).astype(np.int16).tobytes()  # every slice differs
        datasets.append(ds)
    return datasets


def corpus_bytes(name: str, sop_uid: str | None = None) -> bytes:
    """A corpus file as stored bytes; with `sop_uid`, re-encoded in its own syntax under that
    SOP Instance UID (the MR_small variants all share one)."""
    path = corpus_path(name)
    if sop_uid is None:
        return path.read_bytes()
    ds = dcmread(path)
    ds.SOPInstanceUID = sop_uid
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    out = BytesIO()
    ds.save_as(out)
    return out.getvalue()


# One SOP Instance UID per MR_small variant so all of them can live in one archive.
MR_VARIANTS = {
    "MR_small_implicit.dcm": "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457.2",
    "MR_small_bigendian.dcm": "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457.3",
    "MR_small_RLE.dcm": "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457.4",
    "MR_small_jpeg_ls_lossless.dcm": "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457.5",
}


def corpus_files() -> dict[str, bytes]:
    """Every corpus file, MR variants under distinct SOP Instance UIDs."""
    return {name: corpus_bytes(name, MR_VARIANTS.get(name)) for name in CORPUS}


# --- synthetic images with smooth content (meaningful bounds for lossy codecs) -------------

MULTIFRAME_GREY_BYTE_SC = "1.2.840.10008.5.1.4.1.1.7.2"
PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30"


def smooth_samples(rows: int, columns: int, low: float, high: float,
                   frame: int = 0) -> np.ndarray:
    """A gradient, a soft-edged disc and a gentle ripple spanning [low, high], as float64;
    `frame` moves the disc so the frames of a multi-frame image differ."""
    yy, xx = np.mgrid[:rows, :columns].astype(np.float64)
    ramp = 0.2 + 0.4 * xx / columns + 0.1 * yy / rows
    centre = (rows / 2 + 3 * frame, columns / 2 - 5 * frame)
    distance = np.hypot(yy - centre[0], xx - centre[1]) / (min(rows, columns) / 4)
    disc = 0.25 / (1 + np.exp((distance - 1) * 8))
    ripple = 0.05 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    raw = ramp + disc + ripple
    unit: np.ndarray = (raw - raw.min()) / (raw.max() - raw.min())
    return low + unit * (high - low)


def synthetic_image(*, bits_stored: int, signed: bool = False, frames: int = 1,
                    rows: int = 96, columns: int = 128, photometric: str = "MONOCHROME2",
                    sop_class: str = CTImageStorage, modality: str = "CT",
                    study_uid: str | None = None) -> bytes:
    """A greyscale image (Part 10, Explicit VR Little Endian) of smooth content using most of
    the range of `bits_stored` bits; 8 bits allocated up to 8 bits stored, else 16."""
    bits_allocated = 8 if bits_stored <= 8 else 16
    top = 2 ** bits_stored - 1
    low, high = (-(top + 1) // 2, top // 2) if signed else (0, top)
    margin = (high - low) * 0.03
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits_allocated // 8}")
    pixels = np.stack([np.rint(smooth_samples(rows, columns, low + margin, high - margin, i))
                       .astype(dtype) for i in range(frames)])
    ds = _image_header(sop_class, modality, study_uid)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(signed)
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = pixels.astype(dtype.newbyteorder("<")).tobytes()
    return _part10(ds)


def float_image(frames: int = 2, rows: int = 32, columns: int = 40,
                study_uid: str | None = None) -> bytes:
    """A Parametric Map with 32-bit Float Pixel Data (7FE0,0008), `frames` frames."""
    pixels = np.stack([smooth_samples(rows, columns, -2.5, 7.25, i)
                       for i in range(frames)]).astype("<f4")
    ds = _image_header(PARAMETRIC_MAP, "MR", study_uid)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated = 32
    ds.NumberOfFrames = frames
    ds.FloatPixelData = pixels.tobytes()
    return _part10(ds)


def new_instance(sop_class: str) -> Dataset:
    """An empty Explicit VR Little Endian instance of `sop_class` with a new SOP Instance UID
    and its file meta."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    sop = generate_uid()
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop
    return ds


def _image_header(sop_class: str, modality: str, study_uid: str | None) -> Dataset:
    ds = new_instance(sop_class)
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "SYNTHETIC^IMAGE"
    ds.PatientID = "GEN-0002"
    ds.StudyDate = "20240315"
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    return ds


def _part10(ds: Dataset) -> bytes:
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
