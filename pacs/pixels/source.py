"""Reading a stored instance for pixel work: its header, and its frames' stored bytes."""

from io import BytesIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from pacs.dicom.pixel_data import PIXEL_ELEMENTS
from pacs.pixels.description import PixelDescription, PixelError, describe, pixel_element
from storage.protocols import BlobStore
from storage.rows import InstanceLocation
from storage.spans import read_spans


def read_header(blobs: BlobStore, item: InstanceLocation) -> tuple[Dataset, str | None]:
    """The dataset up to its pixel data (the bytes before the recorded pixel span only), and
    the pixel data element's VR when its header says (explicit VR; PS3.5 7.1.2)."""
    bulk = item.bulk
    span = next((bulk[e.key] for e in PIXEL_ELEMENTS if e.key in bulk), None)
    end = span.offset if span is not None and item.frames_json != b"[]" else item.blob_size
    data = blobs.read(item.blob_name, 0, end)
    vr = data[end - 8:end - 6] if end < item.blob_size and end >= 8 else b""
    ds = dcmread(BytesIO(data), stop_before_pixels=True, force=True)
    return ds, vr.decode("ascii") if vr in (b"OB", b"OW") else None


def read_instance(blobs: BlobStore, item: InstanceLocation) -> Dataset:
    """The whole stored dataset, pixel data included (one instance in memory)."""
    return dcmread(BytesIO(blobs.read(item.blob_name, 0, item.blob_size)), force=True)


def read_frame(blobs: BlobStore, item: InstanceLocation, number: int) -> bytes:
    """Frame `number` (1-based) as stored, from the spans recorded at ingest."""
    frames = item.frames
    if not frames:
        return _frame_by_parsing(blobs, item, number)
    return b"".join(read_spans(blobs, item.blob_name, frames[number - 1]))


def _frame_by_parsing(blobs: BlobStore, item: InstanceLocation, number: int) -> bytes:
    """Frames without recorded spans (a deflated dataset): parse the whole instance."""
    ds = read_instance(blobs, item)
    frames = dataset_frames(ds, describe(ds))
    if number > len(frames):
        raise PixelError(f"frame {number} does not exist: the instance has {len(frames)}")
    return frames[number - 1]


def dataset_frames(ds: Dataset, desc: PixelDescription) -> list[bytes]:
    """Every frame of a parsed dataset, as stored (PS3.5 8.1.1, A.4)."""
    element = pixel_element(ds)
    if element is None:
        raise PixelError("the instance has no pixel data")
    value: bytes = ds[element.keyword].value
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        return list(generate_frames(value, number_of_frames=desc.frames))
    size = desc.frame_bytes
    if desc.bits_allocated == 1 and desc.frames > 1 and (size * 8) != \
            desc.rows * desc.columns * desc.samples:
        raise PixelError("1-bit frames that do not end on a byte boundary cannot be split")
    return [value[i * size:(i + 1) * size] for i in range(desc.frames)]
