"""The Image Pixel module attributes a codec needs (PS3.3 C.7.6.3)."""

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from pacs.dicom.pixel_data import (
    PIXEL_BY_KEY,
    PIXEL_ELEMENTS,
    SUBSAMPLED_PHOTOMETRICS,
    PixelElement,
    native_frame_bytes,
)


class PixelError(ValueError):
    """Pixel data that cannot be decoded, or a target it cannot be encoded to."""


@dataclass(frozen=True)
class PixelDescription:
    """How one frame's samples are laid out; `photometric` is as stored."""

    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str
    planar: int
    frames: int
    floating: bool = False
    pixel_vr: str = "OW"

    @property
    def dtype(self) -> np.dtype:
        """The native-endian dtype a decoded frame has."""
        if self.floating:
            return np.dtype(f"float{self.bits_allocated}")
        size = max(self.bits_allocated, 8)
        return np.dtype(f"{'int' if self.signed else 'uint'}{size}")

    @property
    def shape(self) -> tuple[int, ...]:
        if self.samples == 1:
            return (self.rows, self.columns)
        return (self.rows, self.columns, self.samples)

    @property
    def subsampled(self) -> bool:
        """Native YBR_FULL_422: two luminance samples share one chroma pair (PS3.3 C.7.6.3.1.2)."""
        return self.photometric in SUBSAMPLED_PHOTOMETRICS and self.samples == 3

    @property
    def frame_bytes(self) -> int:
        """Bytes of one native frame (bits rounded up to whole bytes for 1-bit data)."""
        return native_frame_bytes(self.rows, self.columns, self.samples, self.bits_allocated,
                                  self.photometric)


def pixel_element(ds: Dataset) -> PixelElement | None:
    """The pixel data element `ds` holds, if any."""
    return next((element for element in PIXEL_ELEMENTS if element.keyword in ds), None)


def describe(ds: Dataset, pixel_key: str | None = None,
             pixel_vr: str | None = None) -> PixelDescription:
    """The description of `ds`'s pixel data; `pixel_key` ("7FE00008" …) and `pixel_vr` name
    the pixel element and its VR when `ds` was read without it. PixelError when the module
    is incomplete."""
    try:
        held = pixel_element(ds)
        element = held or PIXEL_BY_KEY.get(pixel_key or "")
        floating = element is not None and element.float_bits > 0
        bits_allocated = int(ds.BitsAllocated)
        pixel = ds[held.keyword] if held is not None else None
        return PixelDescription(
            rows=int(ds.Rows), columns=int(ds.Columns),
            samples=int(ds.get("SamplesPerPixel", 1) or 1),
            bits_allocated=bits_allocated,
            bits_stored=int(ds.get("BitsStored", bits_allocated) or bits_allocated),
            signed=int(ds.get("PixelRepresentation", 0) or 0) == 1,
            photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip(),
            planar=int(ds.get("PlanarConfiguration", 0) or 0),
            frames=int(ds.get("NumberOfFrames", 1) or 1),
            floating=floating,
            pixel_vr=pixel.VR if pixel is not None else pixel_vr or "OW")
    except (AttributeError, TypeError, ValueError) as exc:
        raise PixelError(f"the Image Pixel module is incomplete or invalid: {exc}") from exc
