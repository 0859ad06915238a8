"""Update the metadata of stored instances with a JSON Patch (RFC 6902) over their DICOM JSON
(PS3.18 F.2), as the Cloud Healthcare API's v1beta1 `updateMetadata` does: each instance of
the study, series or instance is rewritten as Part 10 with the patch applied and replaces the
stored one, through the same path as every store (blob durable, then the index row).

Only top-level attributes can be patched, and not the ones an instance is identified or
decoded by: the study, series, instance and SOP class UIDs, the File Meta group, and the
Image Pixel module (group 0028) with Pixel Data."""

from io import BytesIO
from typing import Any

import anyio
from pydicom import dcmread
from pydicom.dataset import Dataset

from pacs.dicom.ingest import is_io_error
from pacs.dicom.part10 import write_part10
from pacs.dicom.pixel_data import PIXEL_BY_KEY
from pacs.dicom.tags import REQUIRED_UIDS
from pacs.dicom.transfer_syntaxes import syntax_of
from pacs.service.archive import Archive
from pacs.service.errors import InvalidArgument
from pacs.service.retrieve import locate
from pacs.service.staging import stage_all
from pacs.service.store_instances import StoreOptions, StoreOutcome, store_staged
from pacs.service.stores import StoreContext
from pacs.service.targets import Target
from storage.protocols import StagedBlob
from storage.rows import InstanceLocation

OPERATIONS = ("add", "replace", "remove")


def check_patch(patch: Any) -> list[tuple[str, str, dict[str, Any] | None]]:
    """The patch as (op, key, element) triples; InvalidArgument saying what is wrong."""
    if not isinstance(patch, list) or not patch:
        raise InvalidArgument("the body must be a JSON Patch: a non-empty array of operations")
    checked = []
    for number, operation in enumerate(patch, 1):
        if not isinstance(operation, dict) or operation.get("op") not in OPERATIONS:
            raise InvalidArgument(f"operation {number}: op must be one of "
                                  f"{', '.join(OPERATIONS)}")
        path = str(operation.get("path", ""))
        key = path[1:].upper()
        if not (path.startswith("/") and len(key) == 8 and all(c in "0123456789ABCDEF"
                                                               for c in key)):
            raise InvalidArgument(f"operation {number}: path {path[:40]!r} must be /GGGGEEEE, "
                                  "a top-level attribute")
        if key in REQUIRED_UIDS or key.startswith(("0002", "0028")) or key in PIXEL_BY_KEY:
            raise InvalidArgument(f"operation {number}: {key} identifies or describes the "
                                  "instance's pixels and cannot be changed")
        value = operation.get("value")
        if operation["op"] != "remove" and not (isinstance(value, dict) and "vr" in value):
            raise InvalidArgument(f"operation {number}: value must be a DICOM JSON element "
                                  '({"vr": …, "Value": […]})')
        checked.append((str(operation["op"]), key, value if operation["op"] != "remove"
                        else None))
    return checked


async def update_metadata(archive: Archive, store: StoreContext, target: Target,
                          patch: Any) -> int:
    """Apply `patch` to every instance under `target`; how many were updated."""
    operations = check_patch(patch)
    found = await locate(archive, store, target)
    for item in found:
        staged = await anyio.to_thread.run_sync(_patched, archive, item, operations)
        outcome = StoreOutcome()
        await store_staged(archive, store, staged, outcome, StoreOptions(replace=True))
        if not outcome.stored:
            raise InvalidArgument(f"instance {item.sop_uid} could not be updated: "
                                  f"{outcome.detail}")
    return len(found)


def _patched(archive: Archive, item: InstanceLocation,
             operations: list[tuple[str, str, dict[str, Any] | None]]) -> StagedBlob:
    syntax = syntax_of(item.transfer_syntax_uid)
    if syntax is None or syntax.big_endian or syntax.deflated:
        raise InvalidArgument(f"instance {item.sop_uid} is stored in transfer syntax "
                              f"{item.transfer_syntax_uid}, whose instances are not updated")
    ds = dcmread(BytesIO(archive.blobs.read(item.blob_name, 0, item.blob_size)))
    for op, key, element in operations:
        tag = int(key, 16)
        if op == "remove":
            if tag not in ds:
                raise InvalidArgument(f"instance {item.sop_uid} has no {key} to remove")
            del ds[tag]
            continue
        if op == "replace" and tag not in ds:
            raise InvalidArgument(f"instance {item.sop_uid} has no {key} to replace")
        try:
            ds[tag] = Dataset.from_json({key: element})[tag]
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidArgument(f"{key}: not a DICOM JSON element: {exc}") from exc
    try:
        data = write_part10(ds, item.transfer_syntax_uid)
    except Exception as exc:  # a value its VR cannot encode: US 70000, a DA that is a number
        if is_io_error(exc):
            raise
        raise InvalidArgument(f"instance {item.sop_uid} cannot be written with the patch: "
                              f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    return stage_all(archive.blobs, [data])
