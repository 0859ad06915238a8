"""Native (uncompressed) frames to and from arrays (PS3.5 8.1.1, 8.2.1)."""

import numpy as np

from pacs.pixels.description import PixelDescription, PixelError


def unpack(data: bytes, desc: PixelDescription, big_endian: bool = False) -> np.ndarray:
    """One native frame as an array of desc.shape; integer samples are masked to Bits Stored
    and sign-extended when Pixel Representation is 1."""
    count = desc.rows * desc.columns * desc.samples
    if desc.bits_allocated == 1:
        bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little", count=count)
        return bits.reshape(desc.shape)
    if desc.subsampled:
        return _upsample_422(np.frombuffer(data, np.uint8, count=desc.frame_bytes), desc)
    if big_endian and desc.bits_allocated == 8 and desc.pixel_vr == "OW":
        words = desc.frame_bytes + desc.frame_bytes % 2  # 8-bit OW: bytes swapped in words
        data = np.frombuffer(data[:words].ljust(words, b"\0"), ">u2").astype("<u2").tobytes()
    dtype = desc.dtype.newbyteorder(">" if big_endian else "<")
    if len(data) < count * dtype.itemsize:
        raise PixelError(f"a native frame needs {count * dtype.itemsize} bytes, found "
                         f"{len(data)}")
    flat = np.frombuffer(data, dtype, count=count).astype(desc.dtype, copy=False)
    array: np.ndarray
    if desc.samples == 1:
        array = flat.reshape(desc.rows, desc.columns)
    elif desc.planar:
        array = flat.reshape(desc.samples, desc.rows, desc.columns).transpose(1, 2, 0)
    else:
        array = flat.reshape(desc.rows, desc.columns, desc.samples)
    return interpret(array, desc)


def _upsample_422(data: np.ndarray, desc: PixelDescription) -> np.ndarray:
    """Native YBR_FULL_422 (Y1 Y2 Cb Cr per pixel pair) as full YBR_FULL samples."""
    groups = data.reshape(desc.rows, desc.columns // 2, 4)
    out = np.empty((desc.rows, desc.columns // 2, 2, 3), np.uint8)
    out[:, :, 0, 0], out[:, :, 1, 0] = groups[:, :, 0], groups[:, :, 1]
    out[:, :, :, 1] = groups[:, :, 2:3]
    out[:, :, :, 2] = groups[:, :, 3:4]
    return out.reshape(desc.rows, desc.columns, 3)


def interpret(array: np.ndarray, desc: PixelDescription) -> np.ndarray:
    """Integer samples masked to Bits Stored, sign-extended if signed, in desc.dtype."""
    if desc.floating or desc.bits_allocated == 1:
        return array
    unused = desc.dtype.itemsize * 8 - desc.bits_stored
    if unused <= 0:
        return array.astype(desc.dtype, copy=False)
    # shift the stored bits to the top and back: masks, and sign-extends signed data
    shifted = array.astype(desc.dtype.newbyteorder("="), copy=False).view(
        desc.dtype.str.replace("i", "u")) << np.uint8(unused)
    return (shifted.view(desc.dtype) >> np.uint8(unused)) if desc.signed \
        else (shifted >> np.uint8(unused))


def unsigned_pattern(array: np.ndarray, desc: PixelDescription) -> np.ndarray:
    """Signed samples as the unsigned Bits Stored bit pattern that JPEG, JPEG-LS and RLE
    carry (PS3.5 8.2.1); unsigned samples unchanged."""
    if not desc.signed:
        return array
    unsigned = array.view(array.dtype.str.replace("i", "u"))
    mask = (1 << desc.bits_stored) - 1
    masked: np.ndarray = unsigned & unsigned.dtype.type(mask)
    return masked


def pack(array: np.ndarray, desc: PixelDescription) -> bytes:
    """An array of desc.shape as native little-endian frame bytes in desc's planar
    configuration; 1-bit samples packed eight to a byte, least significant bit first."""
    if desc.bits_allocated == 1:
        return np.packbits(array.astype(np.uint8).ravel(), bitorder="little").tobytes()
    if desc.samples > 1 and desc.planar:
        array = array.transpose(2, 0, 1)
    return np.ascontiguousarray(array, desc.dtype.newbyteorder("<")).tobytes()
