"""The one Part 10 writer (PS3.10 7.1): the File Meta Information group the archive writes,
and Pixel Data set native or encapsulated (PS3.5 8.1.1, A.4)."""

from collections.abc import Sequence
from io import BytesIO

from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

from pacs.dicom.transfer_syntaxes import TRANSFER_SYNTAXES

IMPLEMENTATION_VERSION = "PACS_PY_1"


def write_part10(ds: Dataset, syntax: str) -> bytes:
    """`ds` as Part 10 bytes in little endian `syntax`. Its file meta (if any) is kept, with
    the Media Storage UIDs, the transfer syntax and our implementation set. Command group
    elements (0000,eeee), which a Part 10 dataset may not hold (PS3.10 7.1) but a stored
    file sometimes does, are left out."""
    for tag in [tag for tag in ds.keys() if tag >> 16 == 0]:
        del ds[tag]
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    ds.file_meta = meta
    out = BytesIO()
    # syntaxes pydicom 3.0 does not know need their encoding named
    dcmwrite(out, ds, implicit_vr=TRANSFER_SYNTAXES[syntax].implicit_vr, little_endian=True,
             enforce_file_format=True)
    return out.getvalue()


def set_pixel_data(ds: Dataset, frames: Sequence[bytes], encapsulated: bool,
                   bits_allocated: int) -> None:
    """Pixel Data (7FE0,0010) holding `frames`: fragments after a Basic Offset Table when
    `encapsulated` (OB, undefined length), else the frames end to end (OB or OW)."""
    if encapsulated:
        ds.PixelData = encapsulate(list(frames), has_bot=True)
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = b"".join(frames)
        ds["PixelData"].VR = "OB" if bits_allocated <= 8 else "OW"
    ds["PixelData"].is_undefined_length = encapsulated
