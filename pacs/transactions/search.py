"""Search transaction (QIDO-RS, PS3.18 10.6): studies, series and instances at every scope."""

import orjson
from starlette.requests import Request
from starlette.responses import Response

from pacs.http.addressing import archive_of, links_of, path_uid, store_of
from pacs.http.content_coding import encoded_response
from pacs.http.media_types import Offer, negotiate
from pacs.http.responses import DICOM_XML, native_xml_response
from pacs.http.transaction import Transaction
from pacs.service.search import search
from pacs.service.search_terms import parse_search
from storage.query import Level

DICOM_JSON = "application/dicom+json"
_OFFERS = (Offer(False, DICOM_JSON), Offer(False, "application/json"),
           Offer(True, DICOM_XML))
_AVAILABLE = [offer.describe() for offer in _OFFERS]
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
    choice = negotiate(request.headers.get("accept"), _OFFERS, _AVAILABLE)
    store, archive = await store_of(request), archive_of(request)
    asked = parse_search(request.query_params.multi_items(), level, store.profile,
                         path_uid(request, "study"), path_uid(request, "series"),
                         max_includefields=archive.settings.max_includefields)
    answer = await search(archive, store, asked, links_of(request))
    if not answer.datasets:
        return Response(status_code=204)  # PS3.18 8.3.4.4.1: no matches
    headers = {"Warning": _MORE_RESULTS} if answer.more and store.profile.warn_more_results \
        else {}
    if not choice.offer.multipart:
        return await encoded_response(request, orjson.dumps(answer.datasets),
                                      choice.media_type, headers=headers)
    response = native_xml_response(answer.datasets, store.profile.xml_namespace)
    response.headers.update(headers)
    return response


SEARCH_STUDIES = Transaction("Search for Studies", "dicomWebRead", search_studies, _OFFERS)
SEARCH_SERIES = Transaction("Search for Series", "dicomWebRead", search_series, _OFFERS)
SEARCH_INSTANCES = Transaction("Search for Instances", "dicomWebRead", search_instances, _OFFERS)
