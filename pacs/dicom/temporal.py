"""The forms of date and time values (PS3.5 Table 6.2-1: DA, TM, DT)."""

import re
from datetime import date

_FORMS = {
    "DA": (re.compile(r"(\d{4})(\d{2})(\d{2})"), "YYYYMMDD"),
    "TM": (re.compile(r"([01]\d|2[0-3])([0-5]\d([0-5]\d|60)?(\.\d{1,6})?)?"),
           "HH, HHMM, HHMMSS or HHMMSS.FFFFFF"),
    "DT": (re.compile(r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?"),
           "YYYYMMDDHHMMSS.FFFFFF&ZZXX, its leading parts at least YYYY"),
}


def temporal_form(vr: str) -> str | None:
    """How a value of `vr` is written, if `vr` is a date or time VR."""
    form = _FORMS.get(vr)
    return form[1] if form else None


def is_temporal(vr: str, value: str) -> bool:
    """Whether `value` is a valid DA, TM or DT value (dates must exist in the calendar)."""
    pattern, _ = _FORMS[vr]
    found = pattern.fullmatch(value)
    if found is None:
        return False
    if vr == "DA":
        try:
            date(int(found[1]), int(found[2]), int(found[3]))
        except ValueError:
            return False
    return True
