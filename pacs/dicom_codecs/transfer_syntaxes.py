"""Transfer syntaxes and the media types their frames travel as (PS3.18 Table 8.7.3-5)."""

from dataclasses import dataclass

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
OCTET_STREAM = "application/octet-stream"
# Native little endian datasets: their Pixel Data bytes are the same in each (deflate
# compresses the whole dataset, not the pixels).
NATIVE_LITTLE_ENDIAN = (IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN,
                        DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)


@dataclass(frozen=True)
class TransferSyntax:
    """`frame_media_type` is the media type of one frame's bytes in this syntax."""

    uid: str
    name: str
    frame_media_type: str


_ALL = (
    TransferSyntax(IMPLICIT_VR_LITTLE_ENDIAN, "Implicit VR Little Endian", OCTET_STREAM),
    TransferSyntax(EXPLICIT_VR_LITTLE_ENDIAN, "Explicit VR Little Endian", OCTET_STREAM),
    TransferSyntax(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, "Deflated Explicit VR Little Endian",
                   OCTET_STREAM),
    TransferSyntax(EXPLICIT_VR_BIG_ENDIAN, "Explicit VR Big Endian", OCTET_STREAM),
    TransferSyntax("1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)", "image/jpeg"),
    TransferSyntax("1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)", "image/jpeg"),
    TransferSyntax("1.2.840.10008.1.2.4.57", "JPEG Lossless (Process 14)", "image/jpeg"),
    TransferSyntax("1.2.840.10008.1.2.4.70", "JPEG Lossless SV1", "image/jpeg"),
    TransferSyntax("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless", "image/jls"),
    TransferSyntax("1.2.840.10008.1.2.4.81", "JPEG-LS Near-Lossless", "image/jls"),
    TransferSyntax("1.2.840.10008.1.2.4.90", "JPEG 2000 Lossless", "image/jp2"),
    TransferSyntax("1.2.840.10008.1.2.4.91", "JPEG 2000", "image/jp2"),
    TransferSyntax("1.2.840.10008.1.2.4.92", "JPEG 2000 Part 2 Lossless", "image/jpx"),
    TransferSyntax("1.2.840.10008.1.2.4.93", "JPEG 2000 Part 2", "image/jpx"),
    TransferSyntax("1.2.840.10008.1.2.4.100", "MPEG2 MP@ML", "video/mpeg"),
    TransferSyntax("1.2.840.10008.1.2.4.101", "MPEG2 MP@HL", "video/mpeg"),
    TransferSyntax("1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264 HP@4.1", "video/mp4"),
    TransferSyntax("1.2.840.10008.1.2.4.103", "MPEG-4 AVC/H.264 BD HP@4.1", "video/mp4"),
    TransferSyntax("1.2.840.10008.1.2.4.104", "MPEG-4 AVC/H.264 HP@4.2 2D", "video/mp4"),
    TransferSyntax("1.2.840.10008.1.2.4.105", "MPEG-4 AVC/H.264 HP@4.2 3D", "video/mp4"),
    TransferSyntax("1.2.840.10008.1.2.4.106", "MPEG-4 AVC/H.264 Stereo HP@4.2", "video/mp4"),
    TransferSyntax("1.2.840.10008.1.2.4.107", "HEVC/H.265 Main Profile", "video/H265"),
    TransferSyntax("1.2.840.10008.1.2.4.108", "HEVC/H.265 Main 10 Profile", "video/H265"),
    TransferSyntax("1.2.840.10008.1.2.4.110", "JPEG XL Lossless", "image/jxl"),
    TransferSyntax("1.2.840.10008.1.2.4.111", "JPEG XL JPEG Recompression", "image/jxl"),
    TransferSyntax("1.2.840.10008.1.2.4.112", "JPEG XL", "image/jxl"),
    TransferSyntax("1.2.840.10008.1.2.4.201", "HTJ2K Lossless", "image/jphc"),
    TransferSyntax("1.2.840.10008.1.2.4.202", "HTJ2K Lossless RPCL", "image/jphc"),
    TransferSyntax("1.2.840.10008.1.2.4.203", "HTJ2K", "image/jphc"),
    TransferSyntax("1.2.840.10008.1.2.5", "RLE Lossless", "image/dicom-rle"),
    TransferSyntax("1.2.840.10008.1.2.8.1", "Deflated Image Frame Compression",
                   "application/x-deflate"),
)
TRANSFER_SYNTAXES: dict[str, TransferSyntax] = {ts.uid: ts for ts in _ALL}

# Default transfer syntax of each media type when the Accept header names none
# (PS3.18 Table 8.7.3-2 and -5).
DEFAULT_TRANSFER_SYNTAX: dict[str, str] = {
    "application/dicom": EXPLICIT_VR_LITTLE_ENDIAN,
    OCTET_STREAM: EXPLICIT_VR_LITTLE_ENDIAN,
    "image/jpeg": "1.2.840.10008.1.2.4.70",
    "image/jls": "1.2.840.10008.1.2.4.80",
    "image/jp2": "1.2.840.10008.1.2.4.90",
    "image/jpx": "1.2.840.10008.1.2.4.92",
    "image/dicom-rle": "1.2.840.10008.1.2.5",
    "image/jxl": "1.2.840.10008.1.2.4.110",
    "image/jphc": "1.2.840.10008.1.2.4.201",
    "application/x-deflate": "1.2.840.10008.1.2.8.1",
}


# The transfer syntaxes each frame media type can carry (PS3.18 Table 8.7.3-5, and the
# Cloud Healthcare API's list, which adds HTJ2K, JPEG XL and deflated frames).
FRAME_SYNTAXES: dict[str, tuple[str, ...]] = {
    OCTET_STREAM: (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN),  # the same bytes
    "image/jpeg": ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
                   "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"),
    "image/jls": ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"),
    "image/jp2": ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"),
    "image/jphc": ("1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                   "1.2.840.10008.1.2.4.203"),
    "image/jxl": ("1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.111",
                  "1.2.840.10008.1.2.4.112"),
    "image/dicom-rle": ("1.2.840.10008.1.2.5",),
    "application/x-deflate": ("1.2.840.10008.1.2.8.1",),
}
PNG = "image/png"  # a frame's samples as a lossless PNG; no transfer syntax applies

# Transfer syntaxes a whole instance can be asked for in (PS3.18 Table 8.7.3-2 and Google's).
INSTANCE_SYNTAXES: tuple[str, ...] = (
    *NATIVE_LITTLE_ENDIAN,
    *(uid for media_type, uids in FRAME_SYNTAXES.items() if media_type != OCTET_STREAM
      for uid in uids),
)


def frame_media_type(uid: str) -> str:
    """Media type of one frame stored in `uid` (octet-stream for unknown native syntaxes)."""
    known = TRANSFER_SYNTAXES.get(uid)
    return known.frame_media_type if known else OCTET_STREAM


def same_frame_bytes(stored: str, requested: str) -> bool:
    """Frames of `stored` are byte-identical in `requested` (native little endian is one)."""
    little = {IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN}
    return stored == requested or (stored in little and requested in little)
