"""Pixel data elements and their layout: the one place that knows the pixel tags (PS3.6
Table 6-1), how big a native frame is (PS3.5 8.1.1) and how encapsulated data is framed
(PS3.5 A.4)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class PixelElement:
    """A pixel data element; `implicit_vr` is its VR when the encoding does not say,
    `float_bits` the size of its float samples (0: integer samples)."""

    tag: int
    keyword: str
    implicit_vr: str
    float_bits: int = 0

    @property
    def key(self) -> str:
        """The tag as DICOM JSON writes it (PS3.18 F.2.1)."""
        return f"{self.tag:08X}"


PIXEL_DATA = PixelElement(0x7FE00010, "PixelData", "OW")
FLOAT_PIXEL_DATA = PixelElement(0x7FE00008, "FloatPixelData", "OF", 32)
DOUBLE_FLOAT_PIXEL_DATA = PixelElement(0x7FE00009, "DoubleFloatPixelData", "OD", 64)
PIXEL_ELEMENTS = (PIXEL_DATA, FLOAT_PIXEL_DATA, DOUBLE_FLOAT_PIXEL_DATA)
PIXEL_BY_TAG = {element.tag: element for element in PIXEL_ELEMENTS}
PIXEL_BY_KEY = {element.key: element for element in PIXEL_ELEMENTS}

# Encapsulated pixel data (PS3.5 A.4): items of fragments, the first the Basic Offset Table.
EXTENDED_OFFSET_TABLE = 0x7FE00001
ITEM = 0xFFFEE000
SEQUENCE_DELIMITER = 0xFFFEE0DD
UNDEFINED_LENGTH = 0xFFFFFFFF

# What the Image Pixel module allows (PS3.3 C.7.6.3.1; PS3.5 8): samples per pixel, bits
# allocated per sample, and the VRs of a pixel data element's value as encoded.
SAMPLES_PER_PIXEL = frozenset({1, 3, 4})
BITS_ALLOCATED = frozenset({1, 8, 16, 32, 64})
PIXEL_VRS = frozenset({"OB", "OW", "OF", "OD", "UN"})

# Photometric interpretations whose native frames hold two samples per pixel: each pair of
# pixels shares one chroma pair (PS3.3 C.7.6.3.1.2).
SUBSAMPLED_PHOTOMETRICS = frozenset({"YBR_FULL_422"})


def native_frame_bits(rows: int, columns: int, samples: int, bits_allocated: int,
                      photometric: str) -> int:
    """Bits of one native frame (PS3.5 8.1.1); frames of 1-bit data need not end on a byte."""
    stored_samples = 2 if samples == 3 and photometric.strip() in SUBSAMPLED_PHOTOMETRICS \
        else samples
    return rows * columns * stored_samples * bits_allocated


def native_frame_bytes(rows: int, columns: int, samples: int, bits_allocated: int,
                       photometric: str) -> int:
    """Bytes of one native frame, rounded up to whole bytes."""
    return (native_frame_bits(rows, columns, samples, bits_allocated, photometric) + 7) // 8
