"""Why an instance was not stored: the Failure Reason values of a Store response (PS3.18
Table 10.5.3-3, from the C-STORE statuses of PS3.4 Annex B.2.3 and PS3.7 Annex C), as data,
in the manner of pynetdicom's `status.py`; a DIMSE gateway answers with the same codes."""

from dataclasses import dataclass


@dataclass(frozen=True)
class FailureReason:
    """A status code, its category and what it means."""

    code: int
    category: str
    meaning: str


PROCESSING_FAILURE = FailureReason(
    0x0110, "Failure", "Processing failure (also: already stored with other content, as "
    "the Cloud Healthcare API answers)")
OUT_OF_RESOURCES = FailureReason(0xA700, "Failure", "Refused: out of resources")
DATA_SET_DOES_NOT_MATCH = FailureReason(
    0xA900, "Failure", "Error: data set does not match SOP class (or the study of the URL)")
CANNOT_UNDERSTAND = FailureReason(
    0xC000, "Failure", "Error: cannot understand (not DICOM, unreadable, UIDs missing)")
