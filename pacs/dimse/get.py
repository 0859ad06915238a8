"""C-GET (PS3.4 C.4.3): the instances a Patient Root or Study Root identifier names, sent back
by C-STORE sub-operations over the same association, each in its stored transfer syntax when
the peer accepted that, else transcoded through the pixel layer to one the peer accepted (as
WADO-RS transcodes); an instance that cannot be sent is a failed sub-operation, named in the
final response."""

import logging
from collections.abc import Callable, Iterator
from io import BytesIO
from typing import Any

import anyio
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID

from pacs.dicom.transfer_syntaxes import EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN
from pacs.dimse.find import (
    CANCELLED,
    PENDING,
    Run,
    failure,
    identifier_keys,
    page,
    search_request,
)
from pacs.pixels.source import read_instance_buffered
from pacs.service.archive import Archive
from pacs.service.errors import ArchiveError
from pacs.service.retrieve import instance_syntax
from pacs.service.search import search
from pacs.service.stores import StoreContext
from storage.rows import InstanceLocation

# the key that must name what to retrieve at each level (C.4.3.1.3.1, unique keys)
UNIQUE_KEYS = {"PATIENT": 0x00100020, "STUDY": 0x0020000D, "SERIES": 0x0020000E,
               "IMAGE": 0x00080018}
_UIDS = tuple(("includefield", f"{tag:08X}") for tag in (0x0020000D, 0x0020000E, 0x00080018))
NATIVE_FIRST = (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN)  # when transcoding

log = logging.getLogger("pacs")


def get(archive: Archive, items: list[InstanceLocation] | Dataset,
        accepted: dict[str, list[str]], run: Run,
        cancelled: Callable[[], bool]) -> Iterator[Any]:
    """What pynetdicom's C-GET handler yields for the instances `matched` found (or its
    failure): the number of sub-operations, then a (pending status, data set) pair per
    instance; `accepted` is, per storage SOP class, the transfer syntaxes the peer accepted
    to receive."""
    if isinstance(items, Dataset):
        yield 1  # (pynetdicom answers success at once to 0, unheard the failure that follows)
        yield items, None
        return
    yield len(items)
    yield from sent(archive, items, lambda: accepted, run, cancelled)


def matched(archive: Archive, store: StoreContext, identifier: Dataset,
            run: Run) -> list[InstanceLocation] | Dataset:
    """The instances a retrieve identifier names by its unique keys, or the failure to
    answer with."""
    level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    keys = {tag: value for tag, value in identifier_keys(identifier).items() if value}
    if level not in UNIQUE_KEYS or UNIQUE_KEYS[level] not in keys:
        return failure(f"QueryRetrieveLevel {level[:16]!r} with its unique key: PATIENT "
                       "(PatientID), STUDY, SERIES or IMAGE (their UIDs)")
    try:
        targets = _instances(archive, store, keys, run)
    except ArchiveError as exc:
        return failure(exc.message)
    return [found[0] for study, series, sop in targets
            if (found := run(archive.index.locate(store.id, study, series, sop)))]


def sent(archive: Archive, items: list[InstanceLocation],
         accepted: Callable[[], dict[str, list[str]]], run: Run,
         cancelled: Callable[[], bool]) -> Iterator[tuple[int | Dataset, Dataset]]:
    """A (pending status, data set) pair per instance, each in a syntax the receiver
    accepted (`accepted()`, asked once the sub-operations' association exists)."""
    for number, item in enumerate(items):
        if cancelled():
            remaining = Dataset()
            remaining.FailedSOPInstanceUIDList = [i.sop_uid for i in items[number:]]
            yield CANCELLED, remaining
            return
        yield PENDING, _dataset(archive, item, accepted(), run)


def _instances(archive: Archive, store: StoreContext, keys: dict[int, str],
               run: Run) -> list[tuple[str, str, str]]:
    """The (study, series, instance) UIDs of every instance the keys match."""
    request = search_request("IMAGE", keys, store, _UIDS)
    targets: list[tuple[str, str, str]] = []
    while True:
        answer = run(search(archive, store, page(request, len(targets)), None))
        targets += [(found["0020000D"]["Value"][0], found["0020000E"]["Value"][0],
                     found["00080018"]["Value"][0]) for found in answer.datasets]
        if not answer.more:
            return targets


def _dataset(archive: Archive, item: InstanceLocation, accepted: dict[str, list[str]],
             run: Run) -> Dataset:
    """The instance as the data set to send: as stored if the peer takes its syntax, else
    transcoded; else one the peer cannot take, which pynetdicom counts as failed."""
    offered = accepted.get(item.sop_class_uid, [])
    if item.transfer_syntax_uid in offered:
        stored: Dataset = run(anyio.to_thread.run_sync(read_instance_buffered, archive.blobs,
                                                       item))
        return stored
    for syntax in dict.fromkeys([s for s in NATIVE_FIRST if s in offered] + offered):
        try:
            target = run(instance_syntax(archive, item, syntax))
            return pydicom.dcmread(BytesIO(run(archive.pixels.instance(item, target))))
        except ArchiveError as exc:
            log.info("sending %s in %s: %s", item.sop_uid, syntax, exc.message)
    log.warning("%s cannot be sent: the receiver accepted none of the transfer syntaxes it "
                "can be sent in (stored as %s)", item.sop_uid, item.transfer_syntax_uid)
    return _unsendable(item)


def _unsendable(item: InstanceLocation) -> Dataset:
    """A data set no context takes: its sub-operation fails, naming the instance."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = item.sop_class_uid, item.sop_uid
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.999")  # never accepted
    return ds
