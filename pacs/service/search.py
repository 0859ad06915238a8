"""Search (PS3.4 C.6 query levels, PS3.18 10.6): one page of matches as DICOM JSON datasets.

Results come from the attributes stored at ingest; the computed attributes (ModalitiesInStudy,
NumberOf…Related…, SOPClassesInStudy, InstanceAvailability and, when links are given,
RetrieveURL) are added here.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from pacs.dicom.tags import vr_of
from pacs.service.archive import Archive
from pacs.service.links import Links
from pacs.service.stores import StoreContext
from storage.query import Level, Query, SearchRow

_COMPUTED = frozenset({0x00080056, 0x00080060, 0x00080061, 0x00080062, 0x00081190, 0x00201206,
                       0x00201208, 0x00201209})


@dataclass(frozen=True)
class SearchRequest:
    """The query plus what to return: `include_all`, or the `include` tags."""

    query: Query
    include: frozenset[int]
    include_all: bool


@dataclass(frozen=True)
class SearchAnswer:
    """The matching datasets of one page; `more` when results beyond it exist."""

    datasets: list[dict[str, Any]]
    more: bool


async def search(archive: Archive, store: StoreContext, request: SearchRequest,
                 links: Links | None) -> SearchAnswer:
    """One page of `request`'s matches in `store`; RetrieveURLs and BulkDataURIs under
    `links` (none without them)."""
    result = await archive.index.search(store.id, request.query)
    shape = _Shape.of(request, store.profile.search_defaults)
    # rows of one study or series repeat its attributes: each distinct value is parsed once
    parse = lru_cache(maxsize=256)(orjson.loads)
    return SearchAnswer([_dataset(row, shape, request, links, parse) for row in result.rows],
                        result.more)


@dataclass(frozen=True)
class _Shape:
    """What every dataset of one search holds, worked out once per search."""

    level: Level
    upper: tuple[Level, ...]
    keys: tuple[tuple[int, str, str], ...]  # each wanted tag with its JSON key and VR

    @classmethod
    def of(cls, request: SearchRequest, defaults: Mapping[Level, frozenset[int]]) -> "_Shape":
        level = request.query.level
        upper = _upper_levels(request.query)
        wanted = defaults[level].union(*(defaults[u] for u in upper), request.include)
        return cls(level, upper,
                   tuple((tag, f"{tag:08X}", vr_of(tag)) for tag in sorted(wanted)))


def _upper_levels(query: Query) -> tuple[Level, ...]:
    """The levels above the query's whose default attributes its results also carry: a
    search of all series carries the study's, of all instances the study's and the series',
    of a study's instances the series' (PS3.18 10.6.3.3)."""
    if query.level is Level.SERIES and query.study_uid is None:
        return (Level.STUDY,)
    if query.level is Level.INSTANCE and query.study_uid is None:
        return (Level.STUDY, Level.SERIES)
    if query.level is Level.INSTANCE and query.series_uid is None:
        return (Level.SERIES,)
    return ()


def _dataset(row: SearchRow, shape: _Shape, request: SearchRequest, links: Links | None,
             parse: Callable[[bytes], dict[str, Any]]) -> dict[str, Any]:
    level = shape.level
    out: dict[str, Any] = {}
    _take(out, parse(row.study_attrs), shape, request.include_all and level is Level.STUDY)
    if row.series_attrs is not None:
        _take(out, parse(row.series_attrs), shape,
              request.include_all and level is Level.SERIES)
    if row.instance_attrs is not None and row.series_uid and row.sop_uid:
        attrs = row.instance_attrs if links is None else links.with_bulk_data_uris(
            row.instance_attrs, row.study_uid, row.series_uid, row.sop_uid)
        _take(out, orjson.loads(attrs), shape, request.include_all)
    computed = _computed(row, level, links, shape.upper)
    for tag, key, vr in shape.keys:
        if tag in computed:
            out[key] = computed[tag]
        elif key not in out and tag not in _COMPUTED:
            out[key] = {"vr": vr}
    if request.include_all:
        out.update((f"{tag:08X}", value) for tag, value in computed.items())
    return dict(sorted(out.items()))


def _take(out: dict[str, Any], attrs: dict[str, Any], shape: _Shape,
          everything: bool) -> None:
    """The wanted attributes of `attrs` (all of them with `everything`), each private one
    with its Private Creator (PS3.5 7.8.1), without which it could not be interpreted."""
    taken = ((int(key, 16), key) for key in attrs) if everything \
        else ((tag, key) for tag, key, _ in shape.keys if key in attrs)
    for tag, key in taken:
        out[key] = attrs[key]
        creator = _private_creator(tag)
        if creator is not None and creator in attrs:
            out[creator] = attrs[creator]


def _private_creator(tag: int) -> str | None:
    """The key of the Private Creator of a private data element (gggg,xxee → gggg,00xx)."""
    group, element = tag >> 16, tag & 0xFFFF
    if group % 2 == 0 or element < 0x1000:
        return None
    return f"{group:04X}00{element >> 8:02X}"


def _computed(row: SearchRow, level: Level, links: Links | None,
              upper: tuple[Level, ...]) -> dict[int, dict[str, Any]]:
    values: dict[int, dict[str, Any]] = {0x00080056: {"vr": "CS", "Value": ["ONLINE"]}}
    if level is Level.STUDY or Level.STUDY in upper:
        values[0x00201206] = {"vr": "IS", "Value": [row.study_series]}
        values[0x00201208] = {"vr": "IS", "Value": [row.study_instances]}
        # a computed list with no values is left out, not sent empty: OHIF v3 reads an
        # empty ModalitiesInStudy's missing Value and its whole study list fails
        if row.modalities:
            values[0x00080061] = {"vr": "CS", "Value": sorted(row.modalities)}
        if row.sop_classes:
            values[0x00080062] = {"vr": "UI", "Value": sorted(row.sop_classes)}
    if level is not Level.STUDY and row.series_uid:
        values[0x00201209] = {"vr": "IS", "Value": [row.series_instances]}
    url: str | None = None
    if level is Level.STUDY:
        url = links.study(row.study_uid) if links else None
        if 0x00080061 in values:  # Modality asked at study level (OHIF does)
            values[0x00080060] = values[0x00080061]
    elif level is Level.SERIES and row.series_uid:
        url = links.series(row.study_uid, row.series_uid) if links else None
    elif row.series_uid and row.sop_uid and links:
        url = links.instance(row.study_uid, row.series_uid, row.sop_uid)
    if url is not None:
        values[0x00081190] = {"vr": "UR", "Value": [url]}
    return values
