"""Search transaction (QIDO-RS, PS3.18 10.6): studies, series and instances at every scope.

Results come from the attributes stored at ingest; computed attributes (ModalitiesInStudy,
NumberOf…Related…, SOPClassesInStudy, RetrieveURL, InstanceAvailability) are added here.
"""

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from pacs.archive import archive_of, path_uid, resolve_store
from pacs.http.media_types import Offer, negotiate
from pacs.http.query_params import SearchRequest, parse_search, vr_of
from pacs.http.resource_urls import dicomweb_root, instance_url, series_url, study_url
from storage.query import Level, SearchRow

DICOM_JSON = "application/dicom+json"
_OFFERS = (Offer(False, DICOM_JSON), Offer(False, "application/json"))
_AVAILABLE = [DICOM_JSON]

# Attributes returned by default (PS3.18 Tables 10.6.3-3, -4 and -5).
STUDY_DEFAULTS = frozenset({
    0x00080005, 0x00080020, 0x00080030, 0x00080050, 0x00080056, 0x00080061, 0x00080090,
    0x00080201, 0x00081190, 0x00100010, 0x00100020, 0x00100030, 0x00100040, 0x0020000D,
    0x00200010, 0x00201206, 0x00201208,
})
SERIES_DEFAULTS = frozenset({
    0x00080005, 0x00080060, 0x00080201, 0x0008103E, 0x00081190, 0x0020000D, 0x0020000E,
    0x00200011, 0x00201209, 0x00400244, 0x00400245, 0x00400275,
})
INSTANCE_DEFAULTS = frozenset({
    0x00080005, 0x00080016, 0x00080018, 0x00080056, 0x00080201, 0x00081190, 0x0020000D,
    0x0020000E, 0x00080060, 0x00200013, 0x00280008, 0x00280010, 0x00280011, 0x00280100,
})
_DEFAULTS = {Level.STUDY: STUDY_DEFAULTS, Level.SERIES: SERIES_DEFAULTS,
             Level.INSTANCE: INSTANCE_DEFAULTS}
_COMPUTED = frozenset({0x00080056, 0x00080060, 0x00080061, 0x00080062, 0x00081190, 0x00201206,
                       0x00201208, 0x00201209})
_MORE_RESULTS = ('299 pacs "There are additional results that can be requested with a larger '
                 'offset"')


async def search_studies(request: Request) -> Response:
    """GET /studies."""
    return await _search(request, Level.STUDY)


async def search_series(request: Request) -> Response:
    """GET /series and /studies/{study}/series."""
    return await _search(request, Level.SERIES)


async def search_instances(request: Request) -> Response:
    """GET /instances, /studies/{study}/instances, /studies/{study}/series/{series}/instances."""
    return await _search(request, Level.INSTANCE)


async def _search(request: Request, level: Level) -> Response:
    archive = archive_of(request)
    media_type = negotiate(request.headers.get("accept"), _OFFERS, _AVAILABLE).media_type
    store = await resolve_store(request)
    study = path_uid(request, "study") if "study" in request.path_params else None
    series = path_uid(request, "series") if "series" in request.path_params else None
    search = parse_search(request.query_params.multi_items(), level, archive.settings,
                          study, series)
    result = await archive.index.search(store.id, search.query)
    if not result.rows:
        return Response(status_code=204)  # PS3.18 8.3.4.4.1: no matches
    root = dicomweb_root(request)
    body = orjson.dumps([_result(row, level, search, root) for row in result.rows])
    headers = {"Warning": _MORE_RESULTS} if result.more else None
    return Response(body, media_type=media_type, headers=headers)


def _result(row: SearchRow, level: Level, search: SearchRequest, root: str) -> dict[str, Any]:
    wanted = _DEFAULTS[level] | search.include
    out: dict[str, Any] = {}
    _take(out, orjson.loads(row.study_attrs), wanted, search.include_all and level is Level.STUDY)
    if row.series_attrs is not None:
        _take(out, orjson.loads(row.series_attrs), wanted,
              search.include_all and level is Level.SERIES)
    if row.instance_attrs is not None:
        attrs = row.instance_attrs.replace(b'"BulkDataURI":"', f'"BulkDataURI":"{root}/'.encode())
        _take(out, orjson.loads(attrs), wanted, search.include_all)
    computed = _computed(row, level, root)
    for tag in wanted | (computed.keys() if search.include_all else set()):
        key = f"{tag:08X}"
        if tag in computed:
            out[key] = computed[tag]
        elif key not in out and tag not in _COMPUTED:
            out[key] = {"vr": vr_of(tag)}
    return dict(sorted(out.items()))


def _take(out: dict[str, Any], attrs: dict[str, Any], wanted: frozenset[int],
          everything: bool) -> None:
    for key, element in attrs.items():
        if everything or int(key, 16) in wanted:
            out[key] = element


def _computed(row: SearchRow, level: Level, root: str) -> dict[int, dict[str, Any]]:
    values: dict[int, dict[str, Any]] = {0x00080056: {"vr": "CS", "Value": ["ONLINE"]}}
    if level is Level.STUDY:
        values[0x00081190] = {"vr": "UR", "Value": [study_url(root, row.study_uid)]}
        values[0x00201206] = {"vr": "IS", "Value": [row.study_series]}
        values[0x00201208] = {"vr": "IS", "Value": [row.study_instances]}
        values[0x00080061] = _multi("CS", sorted(row.modalities))
        values[0x00080062] = _multi("UI", sorted(row.sop_classes))
        values[0x00080060] = values[0x00080061]  # Modality asked at study level (OHIF does)
    elif level is Level.SERIES and row.series_uid:
        values[0x00081190] = {"vr": "UR", "Value": [series_url(root, row.study_uid,
                                                               row.series_uid)]}
        values[0x00201209] = {"vr": "IS", "Value": [row.series_instances]}
    elif row.series_uid and row.sop_uid:
        values[0x00081190] = {"vr": "UR", "Value": [instance_url(
            root, row.study_uid, row.series_uid, row.sop_uid)]}
    return values


def _multi(vr: str, values: list[str]) -> dict[str, Any]:
    return {"vr": vr, "Value": values} if values else {"vr": vr}
