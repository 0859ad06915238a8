"""Numbers as clients write them in URLs and headers: ASCII digits only (RFC 9110 5.6.1
and 14.1.1; PS3.18's frame lists and QIDO's limit and offset are decimal).

Python's int() and float() also read other scripts' digits ('١', '𝟏'), '_' separators and
surrounding whitespace, and str.isdigit() admits '²', which int() then refuses: parsing
through them took '١' as frame 1 and answered 500 for '²'."""

import math
import re

# at most 1,000 digits: far beyond any count a request can mean, and far within what int()
# converts at once (it refuses over 4,300 digits)
_INTEGER = re.compile(r"[0-9]{1,1000}")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]{1,1000}(?:\.[0-9]{0,1000})?|\.[0-9]{1,1000})"
                      r"(?:[eE][+-]?[0-9]{1,3})?")


def ascii_int(text: str) -> int | None:
    """The non-negative integer `text` is in ASCII digits, else None."""
    return int(text) if _INTEGER.fullmatch(text) else None


def ascii_float(text: str) -> float | None:
    """The finite decimal number `text` is in ASCII (sign, point, exponent), else None."""
    if not _DECIMAL.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None
