"""One codec per transfer syntax: decode a frame to samples, encode samples to a frame
(PS3.5 8.2, A.4). imagecodecs (libjpeg-turbo, CharLS, OpenJPEG, OpenJPH, libjxl) does the
bitstream work; pylibjpeg-rle does RLE. Each encoder says why it refuses an image."""

import importlib.util
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import imagecodecs
import jpeg_ls
import numpy as np
from pydicom.pixels.processing import convert_color_space
from rle import utils as rle_utils

from pacs.dicom import transfer_syntaxes as ts
from pacs.dicom.transfer_syntaxes import PNG
from pacs.pixels import native
from pacs.pixels.description import PixelDescription, PixelError

MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
YBR_FULL = "YBR_FULL"


@dataclass(frozen=True)
class Frame:
    """Decoded samples of desc.shape and the Photometric Interpretation they are in."""

    array: np.ndarray
    photometric: str


@dataclass(frozen=True)
class Encoded:
    """One encoded frame."""

    data: bytes
    photometric: str


Decoder = Callable[[bytes, PixelDescription], Frame]
Encoder = Callable[[Frame, PixelDescription], Encoded]
Refusal = Callable[[PixelDescription], str | None]


def _never(desc: PixelDescription) -> str | None:
    return None


@dataclass(frozen=True)
class Codec:
    """`encapsulated` syntaxes keep each frame as its own fragment (PS3.5 A.4)."""

    uid: str
    decode: Decoder
    encode: Encoder | None
    encapsulated: bool
    refuse: Refusal = _never
    lossy_method: str | None = None  # Lossy Image Compression Method (0028,2114) if lossy
    needs: tuple[str, ...] = ()  # the libraries it decodes and encodes with (BACKENDS)

    def missing(self) -> list[str]:
        """The libraries it needs that are not installed (pydicom's missing_dependencies)."""
        return [name for name in self.needs if not BACKENDS[name]()]

    @property
    def lossy(self) -> bool:
        return self.lossy_method is not None


# --- the libraries doing the bitstream work, checked when asked ---------------------------

def _imagecodecs(feature: str) -> Callable[[], bool]:
    return lambda: bool(getattr(getattr(imagecodecs, feature, None), "available", False))


def _module(name: str) -> Callable[[], bool]:
    return lambda: importlib.util.find_spec(name) is not None


JPEG8, LJPEG, JPEGLS, JPEG2K, HTJ2K, JPEGXL, PNG_LIB, RLE, PYJPEGLS = (
    "libjpeg-turbo", "imagecodecs ljpeg", "CharLS", "OpenJPEG", "OpenJPH", "libjxl", "libpng",
    "pylibjpeg-rle", "pyjpegls")
BACKENDS: dict[str, Callable[[], bool]] = {
    JPEG8: _imagecodecs("JPEG8"), LJPEG: _imagecodecs("LJPEG"), JPEGLS: _imagecodecs("JPEGLS"),
    JPEG2K: _imagecodecs("JPEG2K"), HTJ2K: _imagecodecs("HTJ2K"),
    JPEGXL: _imagecodecs("JPEGXL"), PNG_LIB: _imagecodecs("PNG"), RLE: _module("rle"),
    PYJPEGLS: _module("jpeg_ls"),
}


# --- native -----------------------------------------------------------------------------

def _native_decode(big_endian: bool) -> Decoder:
    def decode(data: bytes, desc: PixelDescription) -> Frame:
        photometric = YBR_FULL if desc.subsampled else desc.photometric
        return Frame(native.unpack(data, desc, big_endian), photometric)
    return decode


def _native_encode(frame: Frame, desc: PixelDescription) -> Encoded:
    return Encoded(native.pack(frame.array, desc), frame.photometric)


def _pixel_data_only(desc: PixelDescription) -> str | None:
    """Encapsulation applies to Pixel Data (7FE0,0010) only (PS3.5 A.4, 8.2.16)."""
    return "float pixel data can only be sent uncompressed" if desc.floating else None


def _deflate_decode(data: bytes, desc: PixelDescription) -> Frame:
    try:
        raw = zlib.decompress(data, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise PixelError(f"a deflated frame does not inflate: {exc}") from exc
    return Frame(native.unpack(raw, desc), desc.photometric)


def _deflate_encode(frame: Frame, desc: PixelDescription) -> Encoded:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = packer.compress(native.pack(frame.array, interleaved(desc))) + packer.flush()
    return Encoded(data, frame.photometric)


def interleaved(desc: PixelDescription) -> PixelDescription:
    """Encapsulated frames interleave colour samples by pixel (Planar Configuration 0)."""
    return replace(desc, planar=0)


# --- helpers shared by the compressed codecs ----------------------------------------------

def _compressible(max_bits: int, colour_bits: int = 16, signed: bool = True) -> Refusal:
    """The common limits: integer samples, 1 or 3 of them, at most `max_bits` bits stored
    (`colour_bits` for colour), and signed data only when `signed`."""
    def refuse(desc: PixelDescription) -> str | None:
        if desc.floating or desc.bits_allocated == 1:
            kind = "float" if desc.floating else "1-bit"
            return f"{kind} pixel data can only be sent uncompressed"
        if desc.samples not in (1, 3):
            return f"{desc.samples} samples per pixel cannot be compressed"
        limit = max_bits if desc.samples == 1 else min(max_bits, colour_bits)
        if desc.bits_stored > limit:
            colour = "colour " if desc.samples == 3 else ""
            return f"this syntax holds {colour}samples of at most {limit} bits; the image " \
                   f"has {desc.bits_stored} bits stored"
        if desc.signed and not signed:
            return "signed samples cannot be sent in this form without changing their values"
        return None
    return refuse


def _lossy_colour(desc: PixelDescription) -> str | None:
    if desc.photometric == "PALETTE COLOR":
        return "palette colour indices cannot be compressed lossily"
    return None


def _both(*checks: Refusal) -> Refusal:
    def refuse(desc: PixelDescription) -> str | None:
        return next((reason for check in checks if (reason := check(desc))), None)
    return refuse


def _rgb(frame: Frame) -> np.ndarray:
    """Colour samples as RGB (YBR_FULL converted, PS3.3 C.7.6.3.1.2)."""
    if frame.photometric == YBR_FULL:
        return np.asarray(convert_color_space(frame.array, YBR_FULL, "RGB"))
    return np.ascontiguousarray(frame.array)


def _container(array: np.ndarray, desc: PixelDescription) -> np.ndarray:
    """Unsigned samples in the smallest container that holds Bits Stored."""
    pattern = native.unsigned_pattern(array, desc)
    return np.ascontiguousarray(pattern, np.uint8 if desc.bits_stored <= 8 else np.uint16)


def _signed(array: np.ndarray, desc: PixelDescription) -> np.ndarray:
    """A decoded array in desc.dtype, reinterpreting an unsigned bit pattern as signed."""
    if array.dtype.kind == "u" and desc.signed:
        widened = array.astype(desc.dtype.str.replace("i", "u"), copy=False)
        return native.interpret(widened.view(desc.dtype), desc)
    return native.interpret(array.astype(desc.dtype, copy=False), desc)


def _decoded(array: np.ndarray, desc: PixelDescription, photometric: str) -> Frame:
    if array.shape != desc.shape:
        if array.size != desc.rows * desc.columns * desc.samples:
            raise PixelError(f"a frame decoded to shape {array.shape}; the header describes "
                             f"{desc.shape}")
        array = array.reshape(desc.shape)
    return Frame(_signed(array, desc), photometric)


def _decoding(decode: Callable[[bytes], np.ndarray],
              photometric: Callable[[PixelDescription], str]) -> Decoder:
    def run(data: bytes, desc: PixelDescription) -> Frame:
        try:
            array = decode(data)
        except (imagecodecs.DelayedImportError, RuntimeError, ValueError) as exc:
            raise PixelError(f"the frame could not be decoded: {exc}") from exc
        return _decoded(np.asarray(array), desc, photometric(desc))
    return run


def _as_stored(desc: PixelDescription) -> str:
    return desc.photometric


def _colour_as_rgb(desc: PixelDescription) -> str:
    """Decoders that undo a colour transform hand back RGB."""
    return "RGB" if desc.samples == 3 else desc.photometric


def _mct(codestream: bytes) -> bool:
    """Whether a J2K codestream's COD segment applies the multi-component transform."""
    at = codestream.find(b"\xff\x52")
    return at >= 0 and codestream[at + 8] == 1


# --- JPEG (ISO 10918) ---------------------------------------------------------------------

def _jpeg_lossy(frame: Frame, desc: PixelDescription, bits: int) -> Encoded:
    if desc.samples == 3:
        data = imagecodecs.jpeg8_encode(_rgb(frame), level=90, subsampling="422")
        return Encoded(bytes(data), "YBR_FULL_422")
    samples = _container(frame.array, desc)
    data = imagecodecs.jpeg8_encode(samples, level=90, bitspersample=bits)
    return Encoded(bytes(data), frame.photometric)


def _jpeg_baseline(frame: Frame, desc: PixelDescription) -> Encoded:
    return _jpeg_lossy(frame, desc, 8)


def _jpeg_extended(frame: Frame, desc: PixelDescription) -> Encoded:
    return _jpeg_lossy(frame, desc, 8 if desc.bits_stored <= 8 else 12)


def _jpeg_lossless(frame: Frame, desc: PixelDescription) -> Encoded:
    samples = _container(frame.array, desc)
    data = imagecodecs.jpeg8_encode(samples, lossless=True, predictor=1,
                                    bitspersample=max(desc.bits_stored, 2))
    return Encoded(bytes(data), frame.photometric)


def _jpeg_decoder(photometric: Callable[[PixelDescription], str]) -> Decoder:
    """libjpeg guesses a 3-component stream is YCbCr; DICOM RGB without a JFIF or an Adobe
    transform marker is RGB as coded (PS3.5 8.2.1), as pydicom and DCMTK read it."""
    def run(data: bytes, desc: PixelDescription) -> Frame:
        as_coded = desc.photometric == "RGB" and not _jpeg_says_ycbcr(data)
        try:
            try:
                array = imagecodecs.jpeg8_decode(data, colorspace="RGB" if as_coded else None)
            except RuntimeError:
                array = imagecodecs.ljpeg_decode(data)  # precisions libjpeg-turbo lacks
        except (RuntimeError, ValueError) as exc:
            raise PixelError(f"the JPEG frame could not be decoded: {exc}") from exc
        return _decoded(np.asarray(array), desc, photometric(desc))
    return run


def _jpeg_says_ycbcr(data: bytes) -> bool:
    head = data[:4096]
    adobe = head.find(b"\xff\xee")  # APP14: length, "Adobe", version, flags, transform
    if adobe >= 0 and head[adobe + 4:adobe + 9] == b"Adobe":
        length = int.from_bytes(head[adobe + 2:adobe + 4], "big")
        return length >= 14 and head[adobe + 15] != 0
    return b"JFIF\x00" in head


# --- JPEG-LS (ISO 14495) ------------------------------------------------------------------

NEAR_LOSSLESS_ERROR = 2  # NEAR parameter for JPEG-LS near-lossless: |error| ≤ 2


def _jpegls(near: int) -> Encoder:
    """pyjpegls (CharLS) with the sample precision set to Bits Stored, which signed data
    needs (PS3.5 A.4.3); samples interleaved by pixel. pyjpegls sizes its output buffer
    from the image and fails on small incompressible ones (pydicom's 3x3 SC_rgb_small_odd);
    imagecodecs' CharLS then encodes them, at its container's precision, which is Bits
    Stored exactly when that is 8 or 16."""
    def encode(frame: Frame, desc: PixelDescription) -> Encoded:
        samples = _container(frame.array, desc)
        try:
            data = jpeg_ls.encode_buffer(samples.tobytes(), desc.rows, desc.columns,
                                         desc.samples, max(desc.bits_stored, 2),
                                         lossy_error=near,
                                         interleave_mode=2 if desc.samples > 1 else 0)
        except RuntimeError:
            if desc.bits_stored not in (8, 16):
                raise
            data = imagecodecs.jpegls_encode(samples, level=near)
        return Encoded(bytes(data), frame.photometric)
    return encode


# --- JPEG 2000 and HTJ2K (ISO 15444-1, -15) -----------------------------------------------

def _target_rmse(desc: PixelDescription) -> float:
    """The root-mean-square error lossy wavelet targets aim at: about one grey level of
    an 8-bit image, a few units of a 12-bit one."""
    return min(max(2.0 ** (desc.bits_stored - 10), 0.5), 4.0)


def _j2k_samples(frame: Frame, desc: PixelDescription) -> tuple[np.ndarray, bool]:
    """Samples for a wavelet coder and whether the colour transform applies (RGB only)."""
    array = np.ascontiguousarray(frame.array)
    if desc.signed:
        array = array.astype(np.int16 if desc.bits_stored <= 16 else np.int32, copy=False)
    else:
        array = _container(array, desc)
    return array, frame.photometric == "RGB"


def _colour_out(codestream: bytes, frame: Frame, reversible: bool) -> str:
    if _mct(codestream):
        return "YBR_RCT" if reversible else "YBR_ICT"
    return frame.photometric


def _j2k(reversible: bool) -> Encoder:
    def encode(frame: Frame, desc: PixelDescription) -> Encoded:
        array, mct = _j2k_samples(frame, desc)
        if reversible:
            data = imagecodecs.jpeg2k_encode(array, level=0, codecformat="j2k", mct=mct,
                                             reversible=True, bitspersample=desc.bits_stored)
        else:
            peak = 2.0 ** desc.bits_stored - 1  # OpenJPEG's PSNR is against the precision
            psnr = 20 * np.log10(peak / _target_rmse(desc))
            data = imagecodecs.jpeg2k_encode(array, level=psnr, codecformat="j2k", mct=mct,
                                             reversible=False, bitspersample=desc.bits_stored)
        data = bytes(data)
        return Encoded(data, _colour_out(data, frame, reversible))
    return encode


def _htj2k(reversible: bool) -> Encoder:
    def encode(frame: Frame, desc: PixelDescription) -> Encoded:
        array, mct = _j2k_samples(frame, desc)
        if reversible:
            data = imagecodecs.htj2k_encode(array, reversible=True, rgb=mct, tlm=True)
        else:
            # uniform quantisation of step q errs by q/√12 in the sample domain; the wavelet
            # synthesis gain adds about half again, hence the 1.5
            step = _target_rmse(desc) * np.sqrt(12) / 1.5 / 2.0 ** (array.dtype.itemsize * 8)
            data = imagecodecs.htj2k_encode(array, level=float(step), reversible=False,
                                            rgb=mct, tlm=True)
        data = bytes(data)
        return Encoded(data, _colour_out(data, frame, reversible))
    return encode


# --- JPEG XL (ISO 18181) ------------------------------------------------------------------

JPEG_XL_DISTANCE = 0.5  # butteraugli distance: 1.0 is "visually lossless"; medical wants margin

def _jpegxl(lossless: bool) -> Encoder:
    def encode(frame: Frame, desc: PixelDescription) -> Encoded:
        array = frame.array if lossless else _rgb(frame)
        photometric = frame.photometric if lossless or desc.samples == 1 else "RGB"
        samples = _container(array, desc)
        if lossless:
            data = imagecodecs.jpegxl_encode(samples, lossless=True,
                                             bitspersample=desc.bits_stored)
        else:
            data = imagecodecs.jpegxl_encode(samples, distance=JPEG_XL_DISTANCE,
                                             bitspersample=desc.bits_stored)
        return Encoded(bytes(data), photometric)
    return encode


# JPEG XL JPEG Recompression (PS3.5 A.4.12): a JPEG baseline bitstream repacked losslessly,
# from which the same JPEG can be rebuilt bit for bit.


def _jxl_from_jpeg(data: bytes) -> bytes:
    if data.endswith(b"\xff\xd9\x00"):
        data = data[:-1]  # the fragment's padding to even length is not part of the JPEG
    try:
        return bytes(imagecodecs.jpegxl_encode_jpeg(data))
    except imagecodecs.JpegxlError as exc:
        raise PixelError(f"this JPEG cannot be recompressed as JPEG XL (libjxl takes 8-bit "
                         f"Huffman JPEG only): {exc}") from exc


def _jpeg_from_jxl(data: bytes) -> bytes:
    try:
        return bytes(imagecodecs.jpegxl_decode_jpeg(data, numthreads=1))
    except imagecodecs.JpegxlError as exc:
        raise PixelError(f"this JPEG XL holds no reconstructible JPEG: {exc}") from exc


# Conversions between bitstreams that keep every sample: tried before decoding and
# re-encoding, and the only way into JPEG XL JPEG Recompression.
BITSTREAM_CONVERSIONS: dict[tuple[str, str], Callable[[bytes], bytes]] = {
    (ts.JPEG_BASELINE, ts.JPEG_XL_RECOMPRESSION): _jxl_from_jpeg,
    (ts.JPEG_XL_RECOMPRESSION, ts.JPEG_BASELINE): _jpeg_from_jxl,
}


# --- RLE (PS3.5 G) ------------------------------------------------------------------------

def _rle_refuse(desc: PixelDescription) -> str | None:
    if reason := _pixel_data_only(desc):
        return reason
    if desc.bits_allocated not in (8, 16, 32):
        return "RLE Lossless holds integer samples of 8, 16 or 32 bits allocated"
    if desc.samples * desc.bits_allocated // 8 > 15:
        return "RLE Lossless holds at most 15 byte segments per frame"
    return None


def _rle_decode(data: bytes, desc: PixelDescription) -> Frame:
    try:
        raw = rle_utils.decode_frame(  # type: ignore[attr-defined]
            data, desc.rows * desc.columns, desc.bits_allocated, "<")
    except ValueError as exc:
        raise PixelError(f"the RLE frame could not be decoded: {exc}") from exc
    return Frame(native.unpack(bytes(raw), replace(desc, planar=1)), desc.photometric)


def _rle_encode(frame: Frame, desc: PixelDescription) -> Encoded:
    data = rle_utils.encode_pixel_data(native.pack(frame.array, interleaved(desc)), rows=desc.rows,
                      columns=desc.columns, samples_per_pixel=desc.samples,
                      bits_allocated=desc.bits_allocated, byteorder="<")
    return Encoded(bytes(data), frame.photometric)


# --- PNG frames (the Cloud Healthcare API's image/png frame type) ------------------------

def _png_encode(frame: Frame, desc: PixelDescription) -> Encoded:
    return Encoded(bytes(imagecodecs.png_encode(_container(frame.array, desc))),
                   frame.photometric)


# --- the registry -------------------------------------------------------------------------

_LOSSY_8 = _both(_compressible(8, signed=False), _lossy_colour)
_LOSSY_12 = _both(_compressible(12, colour_bits=8, signed=False), _lossy_colour)
_LOSSLESS_16 = _compressible(16)
_WAVELET_LOSSY = _both(_compressible(16), _lossy_colour)
_JXL_LOSSY = _both(_compressible(16, signed=False), _lossy_colour)

_jpeg = _jpeg_decoder(_colour_as_rgb)  # libjpeg undoes YCbCr for lossy colour
_jpeg_lossless_decode = _jpeg_decoder(_as_stored)
_jpegls_decode = _decoding(imagecodecs.jpegls_decode, _as_stored)
# OpenJPEG decodes HTJ2K too; OpenJPH's decoder wraps overshooting lossy samples (256 → 0)
# where OpenJPEG clips them.
_j2k_decode = _decoding(imagecodecs.jpeg2k_decode, _colour_as_rgb)
_jxl_decode = _decoding(imagecodecs.jpegxl_decode, _as_stored)

_ALL = (
    Codec(ts.IMPLICIT_VR_LITTLE_ENDIAN, _native_decode(False), _native_encode, False),
    Codec(ts.EXPLICIT_VR_LITTLE_ENDIAN, _native_decode(False), _native_encode, False),
    Codec(ts.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, _native_decode(False), _native_encode, False),
    Codec(ts.EXPLICIT_VR_BIG_ENDIAN, _native_decode(True), None, False),
    Codec(ts.DEFLATED_IMAGE_FRAME, _deflate_decode, _deflate_encode, True, _pixel_data_only),
    Codec(ts.RLE_LOSSLESS, _rle_decode, _rle_encode, True, _rle_refuse, needs=(RLE,)),
    Codec(ts.JPEG_BASELINE, _jpeg, _jpeg_baseline, True, _LOSSY_8,
          lossy_method="ISO_10918_1", needs=(JPEG8,)),
    Codec(ts.JPEG_EXTENDED, _jpeg, _jpeg_extended, True, _LOSSY_12,
          lossy_method="ISO_10918_1", needs=(JPEG8,)),
    Codec(ts.JPEG_LOSSLESS, _jpeg_lossless_decode, _jpeg_lossless, True, _LOSSLESS_16,
          needs=(JPEG8, LJPEG)),
    Codec(ts.JPEG_LOSSLESS_SV1, _jpeg_lossless_decode, _jpeg_lossless, True, _LOSSLESS_16,
          needs=(JPEG8, LJPEG)),
    Codec(ts.JPEG_LS_LOSSLESS, _jpegls_decode, _jpegls(0), True, _LOSSLESS_16,
          needs=(JPEGLS, PYJPEGLS)),
    Codec(ts.JPEG_LS_NEAR_LOSSLESS, _jpegls_decode, _jpegls(NEAR_LOSSLESS_ERROR), True,
          _both(_compressible(16, signed=False), _lossy_colour), lossy_method="ISO_14495_1",
          needs=(JPEGLS, PYJPEGLS)),
    Codec(ts.JPEG_2000_LOSSLESS, _j2k_decode, _j2k(True), True, _LOSSLESS_16, needs=(JPEG2K,)),
    Codec(ts.JPEG_2000, _j2k_decode, _j2k(False), True, _WAVELET_LOSSY,
          lossy_method="ISO_15444_1", needs=(JPEG2K,)),
    Codec(ts.HTJ2K_LOSSLESS, _j2k_decode, _htj2k(True), True, _LOSSLESS_16, needs=(JPEG2K, HTJ2K)),
    Codec(ts.HTJ2K_LOSSLESS_RPCL, _j2k_decode, _htj2k(True), True, _LOSSLESS_16,
          needs=(JPEG2K, HTJ2K)),
    Codec(ts.HTJ2K, _j2k_decode, _htj2k(False), True, _WAVELET_LOSSY,
          lossy_method="ISO_15444_15", needs=(JPEG2K, HTJ2K)),
    Codec(ts.JPEG_XL_LOSSLESS, _jxl_decode, _jpegxl(True), True, _LOSSLESS_16, needs=(JPEGXL,)),
    Codec(ts.JPEG_XL_RECOMPRESSION, _decoding(imagecodecs.jpegxl_decode, _colour_as_rgb), None,
          True, needs=(JPEGXL,)),
    Codec(ts.JPEG_XL, _jxl_decode, _jpegxl(False), True, _JXL_LOSSY,
          lossy_method="ISO_18181_1", needs=(JPEGXL,)),
)
CODECS: dict[str, Codec] = {codec.uid: codec for codec in _ALL}
# PNG frames carry no transfer syntax: the entry is keyed by media type.
CODECS[PNG] = Codec(PNG, _decoding(imagecodecs.png_decode, _as_stored), _png_encode, False,
                    _compressible(16, colour_bits=16, signed=False), needs=(PNG_LIB,))


def missing_backends() -> dict[str, list[str]]:
    """Each codec whose libraries are not all installed, with the missing ones."""
    return {uid: missing for uid, codec in CODECS.items() if (missing := codec.missing())}


def codec_for(uid: str) -> Codec:
    """The codec of transfer syntax `uid`; PixelError if pixels in it cannot be decoded."""
    codec = CODECS.get(uid)
    if codec is None:
        raise PixelError(f"pixel data in transfer syntax {uid} cannot be decoded here")
    return codec


def encode_refusal(uid: str, desc: PixelDescription) -> str | None:
    """Why frames described by `desc` cannot be encoded in `uid`, or None if they can."""
    codec = CODECS.get(uid)
    if codec is None or codec.encode is None:
        sources = [s for s, t in BITSTREAM_CONVERSIONS if t == uid]
        if sources:
            return f"transfer syntax {uid} is made only from {', '.join(sources)} frames"
        return f"this server does not encode transfer syntax {uid}"
    return codec.refuse(desc)
