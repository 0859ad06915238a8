"""Transcoding frames and whole instances between transfer syntaxes (PS3.18 8.7.3, PS3.5 8,
A.4): decode with the stored syntax's codec, encode with the target's, and fix the attributes
the new encoding changes (Photometric Interpretation, Planar Configuration, Lossy Image
Compression)."""

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from pacs.dicom.byte_order import WORD_SIZES, swapped
from pacs.dicom.part10 import set_pixel_data, write_part10
from pacs.dicom.pixel_data import PIXEL_DATA
from pacs.dicom.transfer_syntaxes import (
    EXPLICIT_VR_BIG_ENDIAN,
    NATIVE_LITTLE_ENDIAN,
    same_frame_bytes,
)
from pacs.pixels.codecs import (
    BITSTREAM_CONVERSIONS,
    CODECS,
    Encoded,
    codec_for,
    encode_refusal,
)
from pacs.pixels.description import PixelDescription, PixelError, describe, pixel_element
from pacs.pixels.source import dataset_frames


def transcode_frame(data: bytes, stored: str, target: str,
                    desc: PixelDescription) -> Encoded:
    """One stored frame in `target`; PixelError with the reason when impossible. A lossless
    bitstream conversion, where one exists, is preferred to decoding and re-encoding."""
    convert = BITSTREAM_CONVERSIONS.get((stored, target))
    if convert is not None:
        return Encoded(convert(data), desc.photometric)
    reason = encode_refusal(target, desc)
    if reason:
        raise PixelError(reason)
    encoder = CODECS[target].encode
    assert encoder is not None  # encode_refusal said it exists
    return encoder(codec_for(stored).decode(data, desc), desc)


def transcode_refusal(stored: str, target: str, desc: PixelDescription | None) -> str | None:
    """Why an instance stored in `stored` cannot be sent in `target` (None if it can)."""
    if stored == target or desc is None:
        return None
    if stored not in CODECS:
        return f"pixel data in transfer syntax {stored} cannot be decoded here"
    if _same_pixel_bytes(stored, target) or (stored, target) in BITSTREAM_CONVERSIONS:
        return None
    return encode_refusal(target, desc)


def _same_pixel_bytes(stored: str, target: str) -> bool:
    return same_frame_bytes(stored, target) or (stored in NATIVE_LITTLE_ENDIAN
                                                 and target in NATIVE_LITTLE_ENDIAN)


def transcode_instance(ds: Dataset, target: str) -> bytes:
    """A parsed Part 10 instance re-encoded in `target`, as Part 10 bytes."""
    stored = str(ds.file_meta.TransferSyntaxUID)
    if pixel_element(ds) is not None and not _same_pixel_bytes(stored, target):
        desc = describe(ds)
        reason = transcode_refusal(stored, target, desc)
        if reason:
            raise PixelError(reason)
        if not desc.floating:  # float values are native everywhere: only byte order changes
            _reencode_pixels(ds, desc, stored, target)
    for _ in ds.iterall():
        pass  # parses every raw element, so that each has its VR before re-encoding
    if stored == EXPLICIT_VR_BIG_ENDIAN:
        _to_little_endian(ds)
    return write_part10(ds, target)


def _to_little_endian(ds: Dataset) -> None:
    """A big endian dataset made little endian: values are parsed, and the words of the
    binary VRs pydicom keeps as bytes are swapped (the pixel data is already re-encoded)."""
    for elem in ds.iterall():
        size = WORD_SIZES.get(elem.VR)  # pydicom keeps OW, OF, OL, OD, OV values as bytes
        if size and isinstance(elem.value, bytes) and elem.tag != PIXEL_DATA.tag:
            elem.value = swapped(elem.value, size)
    ds.set_original_encoding(False, True, ds.original_character_set)


def _reencode_pixels(ds: Dataset, desc: PixelDescription, stored: str, target: str) -> None:
    encoded = [transcode_frame(frame, stored, target, desc)
               for frame in dataset_frames(ds, desc)]
    codec = CODECS[target]
    set_pixel_data(ds, [e.data for e in encoded], codec.encapsulated, desc.bits_allocated)
    ds.PhotometricInterpretation = encoded[0].photometric
    if desc.samples > 1:
        ds.PlanarConfiguration = desc.planar if not codec.encapsulated and \
            not desc.subsampled else 0
    if codec.lossy_method and (stored, target) not in BITSTREAM_CONVERSIONS:
        _mark_lossy(ds, stored, codec.lossy_method, desc.frame_bytes * len(encoded),
                    sum(len(e.data) for e in encoded))


def _mark_lossy(ds: Dataset, stored: str, method: str, raw_bytes: int,
                coded_bytes: int) -> None:
    """Lossy Image Compression, Ratio and Method (PS3.3 C.7.6.1.1.5), history kept; a
    history without its methods gets the one the stored lossy syntax implies."""
    ratio = f"{raw_bytes / max(coded_bytes, 1):.4g}"[:16]
    ratios, methods = (_history(ds, k) for k in ("LossyImageCompressionRatio",
                                                 "LossyImageCompressionMethod"))
    implied = CODECS[stored].lossy_method if stored in CODECS else None
    if len(methods) < len(ratios) and implied:
        methods = [*methods, *[implied] * (len(ratios) - len(methods))]
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = [*ratios, ratio]
    ds.LossyImageCompressionMethod = [*methods, method]


def _history(ds: Dataset, keyword: str) -> list[object]:
    """Earlier values of a lossy compression attribute, when the image was lossy before."""
    if ds.get("LossyImageCompression") != "01" or keyword not in ds:
        return []
    value = ds[keyword].value
    return list(value) if isinstance(value, MultiValue | list) else [value]


# What a transcode holds, measured (peak RSS) on 100 frames of 512 x 512 and on one frame of
# 8000 x 8000, per byte of decoded frame: the frame as read and as decoded, and the encoder's
# buffers (CharLS and OpenJPEG work in wider samples). A whole instance also holds its bytes
# as read and as parsed, and every frame decoded or encoded.
FRAME_COPIES = 8
STORED_COPIES = 2
DECODED_COPIES = 4


def _decoded_bytes(desc: PixelDescription) -> int:
    return desc.rows * desc.columns * desc.samples * ((desc.bits_allocated + 7) // 8)


def frame_need(desc: PixelDescription) -> int:
    """The bytes of working memory transcoding one frame of `desc` takes."""
    return _decoded_bytes(desc) * FRAME_COPIES


def instance_need(desc: PixelDescription | None, stored_bytes: int) -> int:
    """The bytes of working memory transcoding a whole instance of `stored_bytes` takes."""
    pixels = 0 if desc is None else \
        _decoded_bytes(desc) * (desc.frames * DECODED_COPIES + FRAME_COPIES)
    return stored_bytes * STORED_COPIES + pixels
