"""pydicom's global configuration, set once per process at startup (never per request)."""

import logging

import pydicom.config
from pydicom._uid_dict import UID_dictionary

# Transfer syntaxes newer than pydicom 3.0's dictionary (PS3.6 Table A-1, 2024-2025):
# without an entry pydicom refuses to write a file in them.
NEWER_TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2.4.110": ("JPEG XL Lossless", "JPEGXLLossless"),
    "1.2.840.10008.1.2.4.111": ("JPEG XL JPEG Recompression", "JPEGXLJPEGRecompression"),
    "1.2.840.10008.1.2.4.112": ("JPEG XL", "JPEGXL"),
    "1.2.840.10008.1.2.8.1": ("Deflated Image Frame Compression",
                              "DeflatedImageFrameCompression"),
}


def configure_pydicom() -> None:
    """Archives keep what they are sent: read without validating values; know every
    transfer syntax the server encodes."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    for uid, (name, keyword) in NEWER_TRANSFER_SYNTAXES.items():
        UID_dictionary.setdefault(uid, (name, "Transfer Syntax", "", "", keyword))
