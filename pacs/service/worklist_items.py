"""Modality Worklist items (PS3.4 K.6) as DICOM JSON files in the worklist folder
(`--worklist DIR`), which the DICOM gateway answers worklist C-FINDs from
(pacs/dimse/worklist.py): listed, read, written and removed here for the HTTP door (a RIS
bridge, an order-entry script). Each write goes to a temporary file renamed into place, so a
C-FIND reads an item whole or not at all."""

import contextlib
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

import orjson
from pydicom.dataset import Dataset

from pacs.service.errors import FailedPrecondition, InvalidArgument, NotFound

ITEM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a file name, without .json
SCHEDULED_STEPS = "00400100"  # Scheduled Procedure Step Sequence (PS3.4 K.6.1.2.2)


def folder_of(worklist_dir: Path | None) -> Path:
    """The worklist folder; FailedPrecondition when the archive keeps none."""
    if worklist_dir is None:
        raise FailedPrecondition("this archive keeps no worklist: start pacs serve with "
                                 "--worklist DIR")
    return worklist_dir


def list_items(folder: Path) -> list[dict[str, Any]]:
    """Every item, as {"id", "item"}, in id order; files that are not DICOM JSON skipped
    (the gateway logs them)."""
    found = []
    for path in sorted(folder.glob("*.json")):
        with contextlib.suppress(OSError, orjson.JSONDecodeError):
            found.append({"id": path.stem, "item": orjson.loads(path.read_bytes())})
    return found


def get_item(folder: Path, item_id: str) -> dict[str, Any]:
    """Item `item_id` as {"id", "item"}; NotFound if there is none."""
    try:
        return {"id": item_id, "item": orjson.loads(_path(folder, item_id).read_bytes())}
    except (FileNotFoundError, orjson.JSONDecodeError):
        raise NotFound(f"worklist item {item_id} not found") from None


def put_item(folder: Path, item_id: str | None, item: Any) -> dict[str, Any]:
    """Write `item` (a DICOM JSON data set with its scheduled procedure steps) under
    `item_id`, replacing what was there, or under a new id; InvalidArgument if it is not
    one."""
    _check(item)
    item_id = item_id or uuid.uuid4().hex
    target = _path(folder, item_id)
    folder.mkdir(parents=True, exist_ok=True)
    fd, staged = tempfile.mkstemp(dir=folder, prefix=".", suffix=".part")  # not *.json
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(orjson.dumps(item))
            out.flush()
            os.fsync(out.fileno())
        os.replace(staged, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(staged)
        raise
    return {"id": item_id, "item": item}


def delete_item(folder: Path, item_id: str) -> None:
    """Remove item `item_id`; NotFound if there is none."""
    try:
        _path(folder, item_id).unlink()
    except FileNotFoundError:
        raise NotFound(f"worklist item {item_id} not found") from None


def _path(folder: Path, item_id: str) -> Path:
    if not ITEM_ID.fullmatch(item_id):
        raise InvalidArgument(f"{item_id[:80]!r} is not a worklist item id: 1 to 64 letters, "
                              "digits, '.', '_' or '-', starting with a letter or digit")
    return folder / f"{item_id}.json"


def _check(item: Any) -> None:
    """InvalidArgument unless `item` is a DICOM JSON data set (PS3.18 F.2) with at least one
    Scheduled Procedure Step, which is what a worklist C-FIND matches."""
    if not isinstance(item, dict):
        raise InvalidArgument("a worklist item is a DICOM JSON object (PS3.18 F.2)")
    try:
        Dataset.from_json(item)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidArgument(f"the worklist item is not DICOM JSON: {exc}") from None
    steps = item.get(SCHEDULED_STEPS, {})
    if not isinstance(steps, dict) or not steps.get("Value"):
        raise InvalidArgument("a worklist item needs a Scheduled Procedure Step Sequence "
                              "(0040,0100) with at least one step (PS3.4 K.6.1.2.2)")
