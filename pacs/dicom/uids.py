"""DICOM UID syntax (PS3.5 9.1): digits and dots, at most 64 characters."""

import re

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
MAX_UID_LENGTH = 64


def is_valid_uid(value: str) -> bool:
    """True if `value` is a syntactically valid UID, safe to use in a path or URL.

    Leading zeros in a component (forbidden by PS3.5 9.1) are tolerated because real archives
    hold such UIDs; anything but digits and single dots is refused.
    """
    return len(value) <= MAX_UID_LENGTH and _UID.fullmatch(value) is not None
