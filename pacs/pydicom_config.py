"""pydicom's global configuration, set once per process at startup (never per request)."""

import logging

import pydicom.config


def configure_pydicom() -> None:
    """Archives keep what they are sent: read without validating values."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
