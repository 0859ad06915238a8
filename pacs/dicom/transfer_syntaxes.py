"""Transfer syntaxes (PS3.5 Section 10, Annex A; PS3.6 Table A-1) and the media types their
frames travel as (PS3.18 Table 8.7.3-5), built on pydicom's UID constants.

This is the one table of transfer-syntax facts: what a syntax is called, how its dataset and
pixel data are encoded, and which frame media type carries it. What the server can decode and
encode in each is the codec registry's business (`pacs.pixels.codecs`).
"""

from dataclasses import dataclass

from pydicom import uid

OCTET_STREAM = "application/octet-stream"
PNG = "image/png"  # a frame's samples as a lossless PNG; no transfer syntax applies

# Syntaxes newer than pydicom 3.0's dictionary (PS3.6 Table A-1, 2024-2025).
JPEG_XL_LOSSLESS = uid.UID("1.2.840.10008.1.2.4.110")
JPEG_XL_RECOMPRESSION = uid.UID("1.2.840.10008.1.2.4.111")
JPEG_XL = uid.UID("1.2.840.10008.1.2.4.112")
DEFLATED_IMAGE_FRAME = uid.UID("1.2.840.10008.1.2.8.1")

IMPLICIT_VR_LITTLE_ENDIAN = uid.ImplicitVRLittleEndian
EXPLICIT_VR_LITTLE_ENDIAN = uid.ExplicitVRLittleEndian
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = uid.DeflatedExplicitVRLittleEndian
EXPLICIT_VR_BIG_ENDIAN = uid.ExplicitVRBigEndian
JPEG_BASELINE = uid.JPEGBaseline8Bit
JPEG_EXTENDED = uid.JPEGExtended12Bit
JPEG_LOSSLESS = uid.JPEGLossless
JPEG_LOSSLESS_SV1 = uid.JPEGLosslessSV1
JPEG_LS_LOSSLESS = uid.JPEGLSLossless
JPEG_LS_NEAR_LOSSLESS = uid.JPEGLSNearLossless
JPEG_2000_LOSSLESS = uid.JPEG2000Lossless
JPEG_2000 = uid.JPEG2000
HTJ2K_LOSSLESS = uid.HTJ2KLossless
HTJ2K_LOSSLESS_RPCL = uid.HTJ2KLosslessRPCL
HTJ2K = uid.HTJ2K
RLE_LOSSLESS = uid.RLELossless


@dataclass(frozen=True)
class TransferSyntax:
    """One transfer syntax: `encapsulated` pixel data is a sequence of fragments (PS3.5 A.4);
    `deflated` datasets are compressed whole (PS3.5 A.5); `frame_media_type` is the media type
    of one frame's bytes (PS3.18 Table 8.7.3-5)."""

    uid: uid.UID
    name: str
    keyword: str
    frame_media_type: str
    encapsulated: bool = True
    implicit_vr: bool = False
    big_endian: bool = False
    deflated: bool = False


def _native(syntax: uid.UID, **encoding: bool) -> TransferSyntax:
    return TransferSyntax(syntax, syntax.name, syntax.keyword, OCTET_STREAM,
                          encapsulated=False, **encoding)


def _compressed(syntax: uid.UID, media_type: str, newer: tuple[str, str] | None = None
                ) -> TransferSyntax:
    """`newer` gives the name and keyword of a syntax pydicom 3.0 does not know."""
    name, keyword = newer or (syntax.name, syntax.keyword)
    return TransferSyntax(syntax, name, keyword, media_type)


_ALL = (
    _native(IMPLICIT_VR_LITTLE_ENDIAN, implicit_vr=True),
    _native(EXPLICIT_VR_LITTLE_ENDIAN),
    _native(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, deflated=True),
    _native(EXPLICIT_VR_BIG_ENDIAN, big_endian=True),
    _compressed(JPEG_BASELINE, "image/jpeg"),
    _compressed(JPEG_EXTENDED, "image/jpeg"),
    _compressed(JPEG_LOSSLESS, "image/jpeg"),
    _compressed(JPEG_LOSSLESS_SV1, "image/jpeg"),
    _compressed(JPEG_LS_LOSSLESS, "image/jls"),
    _compressed(JPEG_LS_NEAR_LOSSLESS, "image/jls"),
    _compressed(JPEG_2000_LOSSLESS, "image/jp2"),
    _compressed(JPEG_2000, "image/jp2"),
    _compressed(uid.JPEG2000MCLossless, "image/jpx"),
    _compressed(uid.JPEG2000MC, "image/jpx"),
    _compressed(uid.MPEG2MPML, "video/mpeg"),
    _compressed(uid.MPEG2MPHL, "video/mpeg"),
    _compressed(uid.MPEG4HP41, "video/mp4"),
    _compressed(uid.MPEG4HP41BD, "video/mp4"),
    _compressed(uid.MPEG4HP422D, "video/mp4"),
    _compressed(uid.MPEG4HP423D, "video/mp4"),
    _compressed(uid.MPEG4HP42STEREO, "video/mp4"),
    _compressed(uid.HEVCMP51, "video/H265"),
    _compressed(uid.HEVCM10P51, "video/H265"),
    _compressed(JPEG_XL_LOSSLESS, "image/jxl", ("JPEG XL Lossless", "JPEGXLLossless")),
    _compressed(JPEG_XL_RECOMPRESSION, "image/jxl",
                ("JPEG XL JPEG Recompression", "JPEGXLJPEGRecompression")),
    _compressed(JPEG_XL, "image/jxl", ("JPEG XL", "JPEGXL")),
    _compressed(HTJ2K_LOSSLESS, "image/jphc"),
    _compressed(HTJ2K_LOSSLESS_RPCL, "image/jphc"),
    _compressed(HTJ2K, "image/jphc"),
    _compressed(RLE_LOSSLESS, "image/dicom-rle"),
    _compressed(DEFLATED_IMAGE_FRAME, "application/x-deflate",
                ("Deflated Image Frame Compression", "DeflatedImageFrameCompression")),
)
TRANSFER_SYNTAXES: dict[str, TransferSyntax] = {ts.uid: ts for ts in _ALL}

# Default transfer syntax of each media type when the Accept header names none
# (PS3.18 Table 8.7.3-2 and -5).
DEFAULT_TRANSFER_SYNTAX: dict[str, str] = {
    "application/dicom": EXPLICIT_VR_LITTLE_ENDIAN,
    OCTET_STREAM: EXPLICIT_VR_LITTLE_ENDIAN,
    "image/jpeg": JPEG_LOSSLESS_SV1,
    "image/jls": JPEG_LS_LOSSLESS,
    "image/jp2": JPEG_2000_LOSSLESS,
    "image/jpx": uid.JPEG2000MCLossless,
    "image/dicom-rle": RLE_LOSSLESS,
    "image/jxl": JPEG_XL_LOSSLESS,
    "image/jphc": HTJ2K_LOSSLESS,
    "application/x-deflate": DEFLATED_IMAGE_FRAME,
}

# The transfer syntaxes each frame media type is served in (PS3.18 Table 8.7.3-5, and the
# Cloud Healthcare API's list, which adds HTJ2K, JPEG XL and deflated frames).
FRAME_SYNTAXES: dict[str, tuple[str, ...]] = {
    OCTET_STREAM: (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN),  # the same bytes
    "image/jpeg": (JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS, JPEG_LOSSLESS_SV1),
    "image/jls": (JPEG_LS_LOSSLESS, JPEG_LS_NEAR_LOSSLESS),
    "image/jp2": (JPEG_2000_LOSSLESS, JPEG_2000),
    "image/jphc": (HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL, HTJ2K),
    "image/jxl": (JPEG_XL_LOSSLESS, JPEG_XL_RECOMPRESSION, JPEG_XL),
    "image/dicom-rle": (RLE_LOSSLESS,),
    "application/x-deflate": (DEFLATED_IMAGE_FRAME,),
}

# Native little endian datasets: their Pixel Data bytes are the same in each (deflate
# compresses the whole dataset, not the pixels).
NATIVE_LITTLE_ENDIAN = tuple(ts.uid for ts in _ALL if not ts.encapsulated and not ts.big_endian)

# Transfer syntaxes a whole instance can be asked for in (PS3.18 Table 8.7.3-2 and Google's).
INSTANCE_SYNTAXES: tuple[str, ...] = (
    *NATIVE_LITTLE_ENDIAN,
    *(syntax for media_type, syntaxes in FRAME_SYNTAXES.items() if media_type != OCTET_STREAM
      for syntax in syntaxes),
)


def syntax_of(uid_text: str) -> TransferSyntax | None:
    """The table's entry for a transfer syntax UID, or None if it is not one we know."""
    return TRANSFER_SYNTAXES.get(uid_text)


def is_big_endian(uid_text: str) -> bool:
    """Whether data stored in `uid_text` is big endian (which never leaves on the web)."""
    known = TRANSFER_SYNTAXES.get(uid_text)
    return known is not None and known.big_endian


def frame_media_type(uid_text: str) -> str:
    """Media type of one frame stored in `uid_text` (octet-stream for unknown syntaxes)."""
    known = TRANSFER_SYNTAXES.get(uid_text)
    return known.frame_media_type if known else OCTET_STREAM


def same_frame_bytes(stored: str, requested: str) -> bool:
    """Frames of `stored` are byte-identical in `requested` (native little endian is one)."""
    little = {IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN}
    return stored == requested or (stored in little and requested in little)
