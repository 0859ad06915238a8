"""Reading a stored instance for pixel work (its header, its frames' stored bytes), and whole
to be sent with its pixel data read from the blob as it goes."""

import io
from io import BytesIO

from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.filereader import read_dataset

from pacs.dicom.pixel_data import PIXEL_ELEMENTS
from pacs.dicom.transfer_syntaxes import syntax_of
from pacs.pixels.description import PixelDescription, PixelError, describe, pixel_element
from storage.protocols import BlobStore
from storage.rows import InstanceLocation
from storage.spans import SpanReader, read_spans

BUFFER_BYTES = 1024 * 1024  # read from the blob store at once while an instance is sent
MAX_TRAILING_BYTES = 1024 * 1024  # elements after the pixel data read into memory


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


def read_instance_buffered(blobs: BlobStore, item: InstanceLocation) -> Dataset:
    """The whole stored dataset, its pixel data a buffer over the blob read only as the
    dataset is written (pydicom's buffered values), so that sending an instance holds its
    header and what follows its pixels (trailing padding, a signature), not the pixels; as
    `read_instance` when no pixel data span was recorded or much follows it."""
    bulk = item.bulk
    element = next((e for e in PIXEL_ELEMENTS if e.key in bulk), None)
    syntax = syntax_of(item.transfer_syntax_uid)
    if element is None or syntax is None or syntax.deflated:
        return read_instance(blobs, item)
    span = bulk[element.key]
    delimiter = 8 if syntax.encapsulated else 0  # the sequence delimiter item (PS3.5 A.4)
    after = span.offset + span.length + delimiter
    if not 0 <= item.blob_size - after <= MAX_TRAILING_BYTES:
        return read_instance(blobs, item)
    ds, vr = read_header(blobs, item)
    pixels = io.BufferedReader(SpanReader(blobs, item.blob_name, span), BUFFER_BYTES)
    ds[element.tag] = DataElement(element.tag, vr or element.implicit_vr, pixels,
                                  is_undefined_length=syntax.encapsulated)
    if after < item.blob_size:
        trailing = read_dataset(BytesIO(blobs.read(item.blob_name, after,
                                                   item.blob_size - after)),
                                syntax.implicit_vr, not syntax.big_endian)
        ds.update(trailing)
    return ds


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
