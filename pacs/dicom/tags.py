"""Attributes the archive reads by tag (PS3.6 Tables 6-1 and 7-1), named once."""

from pydicom.datadict import dictionary_VR

SPECIFIC_CHARACTER_SET = 0x00080005
TRANSFER_SYNTAX_UID = 0x00020010

# The UIDs every stored instance must have (PS3.3 C.12.1, C.7.2.1, C.7.3.1), by JSON key, in
# the order an instance's identity is read: study, series, instance, SOP class.
REQUIRED_UIDS = {
    "0020000D": "StudyInstanceUID",
    "0020000E": "SeriesInstanceUID",
    "00080018": "SOPInstanceUID",
    "00080016": "SOPClassUID",
}


def vr_of(tag: int) -> str:
    """The dictionary VR of `tag` (PS3.6), the first of ambiguous ones; UN if unknown."""
    try:
        return str(dictionary_VR(tag)).split(" ")[0]
    except KeyError:
        return "UN"
