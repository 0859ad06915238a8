"""pydicom's global configuration, set once per process at startup (never per request)."""

import logging
import warnings

import pydicom.config
from pydicom._uid_dict import UID_dictionary

from pacs.dicom.transfer_syntaxes import TRANSFER_SYNTAXES


def configure_pydicom() -> None:
    """Archives keep what they are sent: read without validating values, and without a
    warning on stderr for each lenient read (pydicom's logger still has them); know every
    transfer syntax of the table (pydicom refuses to write a file in one it does not know)."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    for syntax in TRANSFER_SYNTAXES.values():
        UID_dictionary.setdefault(syntax.uid, (syntax.name, "Transfer Syntax", "", "",
                                               syntax.keyword))
