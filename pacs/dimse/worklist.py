"""Modality Worklist C-FIND (PS3.4 K.6): the scheduled procedure steps of a folder of DICOM
JSON files (`--worklist DIR`, one worklist item per `*.json` file, read at each query so that
a file dropped in by a RIS bridge is found at once), matched by the identifier's keys as
PS3.4 C.2.2.2 matches: single values (names regardless of case), `*` and `?` wildcards,
date and time ranges, and sequence matching one level down (the Scheduled Procedure Step
Sequence: an item matches if one of its steps matches every key given)."""

import logging
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from pacs.dimse.find import PENDING, failure

log = logging.getLogger("pacs")
_RANGE_VRS = frozenset({"DA", "TM", "DT"})
_SKIPPED = frozenset({0x00080005})  # Specific Character Set: ours is UTF-8


def worklist(folder: Path | None, identifier: Dataset
             ) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    """A pending response per worklist item the identifier matches, holding the keys asked
    for; a failure if there is no worklist or its folder cannot be read."""
    if folder is None:
        yield failure("this archive keeps no worklist (pacs serve --worklist DIR)"), None
        return
    try:
        files = sorted(folder.glob("*.json"))
    except OSError as exc:
        yield failure(f"the worklist cannot be read: {exc.strerror}"), None
        return
    for path in files:
        item = _item(path, path.stat().st_mtime_ns)
        if item is not None and _matches(item, identifier):
            response = _subset(item, identifier)
            response.SpecificCharacterSet = "ISO_IR 192"
            yield PENDING, response


@lru_cache(maxsize=4096)
def _item(path: Path, _mtime: int) -> Dataset | None:
    """A worklist file's item (read again when it changes); None, logged, if it is not DICOM
    JSON."""
    try:
        return Dataset.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("worklist file %s skipped: %s", path.name, exc)
        return None


def _matches(item: Dataset, keys: Dataset) -> bool:
    return all(_element_matches(item, key) for key in keys if key.tag not in _SKIPPED)


def _element_matches(item: Dataset, key: DataElement) -> bool:
    if key.VR == "SQ":
        if not key.value:
            return True
        wanted = key.value[0]
        steps = item[key.tag].value if key.tag in item else []
        return any(_matches(step, wanted) for step in steps)
    text = "" if key.value is None else str(key.value)
    if not text or text == "*":
        return True  # universal matching
    value = "" if key.tag not in item or item[key.tag].value is None else str(item[key.tag].value)
    if key.VR in _RANGE_VRS and "-" in text:
        low, _, high = text.partition("-")
        return bool(value) and (not low or value >= low) and (not high or value <= high + "~")
    if key.VR == "PN" or "*" in text or "?" in text:
        pattern = re.escape(text.casefold()).replace(r"\*", ".*").replace(r"\?", ".")
        return re.fullmatch(pattern, value.casefold()) is not None
    return value == text


def _subset(item: Dataset, keys: Dataset) -> Dataset:
    """The item's values of the keys asked for (empty where it has none), sequences too."""
    out = Dataset()
    for key in keys:
        if key.tag in _SKIPPED:
            continue
        if key.VR == "SQ":
            steps = item[key.tag].value if key.tag in item else []
            wanted = key.value[0] if key.value else Dataset()
            out.add_new(key.tag, "SQ", [_subset(step, wanted) for step in steps])
        elif key.tag in item:
            out[key.tag] = item[key.tag]
        else:
            out.add_new(key.tag, key.VR, None)
    return out
