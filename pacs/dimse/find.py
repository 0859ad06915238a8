"""C-FIND (PS3.4 C.4.1): Patient Root and Study Root queries at every level, matched as QIDO
matches (`pacs/service/search_terms.py`, the same Query and the same index), so that a
lower-case name finds what a viewer's search box would, and the computed attributes
(ModalitiesInStudy, NumberOfStudyRelatedInstances…) are there too. Each response holds the
keys asked for and no others (C.4.1.1.3.2)."""

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from pacs.service.archive import Archive
from pacs.service.errors import ArchiveError, InvalidArgument
from pacs.service.search import SearchRequest, search
from pacs.service.search_terms import parse_search
from pacs.service.stores import StoreContext
from storage.query import Level

PENDING, CANCELLED = 0xFF00, 0xFE00
IDENTIFIER_DOES_NOT_MATCH = 0xA900  # PS3.4 C.4.1.1.4
PAGE = 500  # matches read from the index at once
QUERY_RETRIEVE_LEVEL, SPECIFIC_CHARACTER_SET = 0x00080052, 0x00080005
PATIENT_ID = 0x00100020
# C-FIND's levels, as the index's; PATIENT is answered from the studies (C.6.1.1.2)
LEVELS = {"PATIENT": Level.STUDY, "STUDY": Level.STUDY, "SERIES": Level.SERIES,
          "IMAGE": Level.INSTANCE}
_NOT_KEYS = frozenset({QUERY_RETRIEVE_LEVEL, SPECIFIC_CHARACTER_SET})

Run = Callable[[Any], Any]  # a coroutine run to its result on the gateway's loop


def find(archive: Archive, store: StoreContext, identifier: Dataset,
         run: Run) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    """The (status, identifier) pairs pynetdicom sends back: one pending response per match,
    then its final success; a bad identifier's failure with an ErrorComment."""
    name = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    keys = identifier_keys(identifier)
    if name == "PATIENT" and any(tag >> 16 != 0x0010 for tag in keys):
        yield failure("a PATIENT level query takes patient attributes (0010,xxxx) only"), None
        return
    try:
        request = search_request(name, keys, store)
    except ArchiveError as exc:
        yield failure(exc.message), None
        return
    asked = frozenset(keys)
    patients: set[str] = set()
    offset = 0
    while True:
        answer = run(search(archive, store, page(request, offset), None))
        for found in answer.datasets:
            kept = {key: value for key, value in found.items() if int(key, 16) in asked}
            if name == "PATIENT":
                patient = str(found.get(f"{PATIENT_ID:08X}", {}).get("Value", [""])[0])
                if patient in patients:
                    continue
                patients.add(patient)
            yield PENDING, _response(kept, name)
        if not answer.more:
            return
        offset += PAGE


def identifier_keys(identifier: Dataset) -> dict[int, str]:
    """An identifier's keys and their values as text (sequences are not matched)."""
    return {element.tag: _text(element.value) for element in identifier
            if element.tag not in _NOT_KEYS and element.tag.group != 0x0002
            and element.VR != "SQ"}


def search_request(level: str, keys: dict[int, str], store: StoreContext,
                   extra: tuple[tuple[str, str], ...] = ()) -> SearchRequest:
    """The search a C-FIND (or C-GET, C-MOVE) identifier at `level` asks for, as QIDO would
    parse it: a key with a value matches, an empty one only asks for the attribute (QIDO's
    includefield), which the computed attributes can only be. ArchiveError if it cannot."""
    if level not in LEVELS:
        raise InvalidArgument(f"QueryRetrieveLevel {level[:16]!r} is not PATIENT, STUDY, "
                              "SERIES or IMAGE")
    terms = [(f"{tag:08X}", value) if value else ("includefield", f"{tag:08X}")
             for tag, value in keys.items()]
    return parse_search([*terms, *extra], LEVELS[level], store.profile)


def page(request: SearchRequest, offset: int) -> SearchRequest:
    """`request`'s page of PAGE matches from `offset`."""
    return replace(request, query=replace(request.query, limit=PAGE, offset=offset))


def _text(value: object) -> str:
    """An identifier element's value as a QIDO parameter's text (values joined by `\\`)."""
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value)


def _response(attributes: dict[str, Any], level: str) -> Dataset:
    response = Dataset.from_json(attributes)
    response.QueryRetrieveLevel = level
    response.SpecificCharacterSet = "ISO_IR 192"  # the index keeps text as Unicode
    return response


def failure(comment: str, code: int = IDENTIFIER_DOES_NOT_MATCH) -> Dataset:
    """A failed response's status, with its ErrorComment (PS3.7 C.4.3)."""
    status = Dataset()
    status.Status = code
    status.ErrorComment = comment[:64]
    return status
