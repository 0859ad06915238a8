"""The whole URL surface in one table (PS3.18 10.4-10.6 resources plus delete, and the Cloud
Healthcare API's management methods).

The same DICOMweb routes serve `/dicomweb` (the default store) and the Cloud Healthcare API
paths `/{v1,v1beta1}/projects/{p}/locations/{l}/datasets/{d}/dicomStores/{s}/dicomWeb`.
"""

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router

from pacs.http.transaction import Handler, Transaction
from pacs.names import ROUTE
from pacs.transactions import (
    delete,
    retrieve,
    retrieve_frames,
    retrieve_rendered,
    search,
    store,
)
from pacs.transactions import management as manage
from pacs.transactions.capabilities import Resource, capabilities
from pacs.transactions.management import answer

STUDY = "/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{instance}"
FRAMES = INSTANCE + "/frames/{frames}"
GOOGLE_STORE = "/{version}" + ROUTE + "/dicomWeb"


async def healthz(request: Request) -> Response:
    """200 once the lifespan has opened the index and blob store."""
    return PlainTextResponse("ok")


def resource(path: str, **methods: Transaction) -> Resource:
    return Resource(path, methods)


# The DICOMweb resources (PS3.18 10.4-10.6) and the transaction behind each method.
RESOURCES = [
    resource("/studies", GET=search.SEARCH_STUDIES, POST=store.STORE),
    resource("/series", GET=search.SEARCH_SERIES),
    resource("/instances", GET=search.SEARCH_INSTANCES),
    resource(STUDY, GET=retrieve.RETRIEVE_STUDY, POST=store.STORE, DELETE=delete.DELETE),
    resource(STUDY + "/metadata", GET=retrieve.RETRIEVE_METADATA),
    resource(STUDY + "/series", GET=search.SEARCH_SERIES),
    resource(STUDY + "/instances", GET=search.SEARCH_INSTANCES),
    resource(SERIES, GET=retrieve.RETRIEVE_STUDY, DELETE=delete.DELETE),
    resource(SERIES + "/metadata", GET=retrieve.RETRIEVE_METADATA),
    resource(SERIES + "/instances", GET=search.SEARCH_INSTANCES),
    resource(INSTANCE, GET=retrieve.RETRIEVE_INSTANCE, DELETE=delete.DELETE),
    resource(INSTANCE + "/metadata", GET=retrieve.RETRIEVE_METADATA),
    resource(FRAMES, GET=retrieve_frames.RETRIEVE_FRAMES),
    resource(INSTANCE + "/bulkdata/{path:path}", GET=retrieve.RETRIEVE_BULKDATA),
    *(resource(level + "/rendered", GET=retrieve_rendered.RETRIEVE_RENDERED)
      for level in (STUDY, SERIES, INSTANCE, FRAMES)),
    *(resource(level + "/thumbnail", GET=retrieve_rendered.RETRIEVE_THUMBNAIL)
      for level in (STUDY, SERIES, INSTANCE, FRAMES)),
]


def route(path: str, handlers: Mapping[str, Handler]) -> Route:
    """One route per path, each method's handler looked up in `handlers`, so that a 405
    names every method the path allows (RFC 9110 15.5.6); HEAD is answered as GET."""
    async def dispatch(request: Request) -> Response:
        return await handlers["GET" if request.method == "HEAD" else request.method](request)
    return Route(path, dispatch, methods=list(handlers), name=path or "/")


def _routes(resources: list[Resource]) -> list[BaseRoute]:
    """Each resource's methods, and OPTIONS describing it (PS3.18 8.9)."""
    return [route(r.path, {**{m: t.handler for m, t in r.methods.items()},
                           "OPTIONS": capabilities([r])}) for r in resources]


DICOMWEB = _routes(RESOURCES)
# Google's own methods on a store's DICOMweb resources: the v1beta1 upsert, and metrics
# (`:action` methods, spec 2.4).
GOOGLE_DICOMWEB: list[BaseRoute] = [
    route(STUDY + ":getStudyMetrics", {"GET": answer(manage.study_metrics)}),
    route(SERIES + ":getSeriesMetrics", {"GET": answer(manage.series_metrics)}),
    route(INSTANCE + ":getStorageInfo", {"GET": answer(manage.storage_info)}),
    *DICOMWEB,
    route("/studies", {"PUT": store.UPSERT.handler}),  # v1beta1 only, as Google has it
    route(STUDY, {"PUT": store.UPSERT.handler}),
    *(route(level + "/metadata", {"PATCH": answer(manage.update_metadata)})  # v1beta1 too
      for level in (STUDY, SERIES, INSTANCE)),
]
SERVICE_ROOT = {"OPTIONS": capabilities(RESOURCES)}  # the whole service (PS3.18 8.9)

PROJECT = "/{version}/projects/{project}"
LOCATION = PROJECT + "/locations/{location}"
DATASET = LOCATION + "/datasets/{dataset}"

# The Cloud Healthcare API's management methods (and Cloud Resource Manager's projects).
MANAGEMENT: list[BaseRoute] = [
    route("/{version}/projects", {"GET": answer(manage.list_projects)}),
    route(PROJECT, {"GET": answer(manage.get_project)}),
    route(PROJECT + "/locations", {"GET": answer(manage.list_locations)}),
    route(LOCATION, {"GET": answer(manage.get_location)}),
    route(LOCATION + "/datasets", {"GET": answer(manage.list_datasets),
                                   "POST": answer(manage.create_dataset)}),
    route(DATASET, {"GET": answer(manage.get_dataset), "PATCH": answer(manage.patch_dataset),
                    "DELETE": answer(manage.delete_dataset)}),
    route(DATASET + "/dicomStores", {"GET": answer(manage.list_stores),
                                     "POST": answer(manage.create_store)}),
    route(DATASET + "/dicomStores/{store}:getDICOMStoreMetrics",
          {"GET": answer(manage.store_metrics)}),
    route(DATASET + "/dicomStores/{store}:import", {"POST": answer(manage.import_files)}),
    route(DATASET + "/dicomStores/{store}:export", {"POST": answer(manage.export_files)}),
    route(DATASET + "/dicomStores/{store}", {"GET": answer(manage.get_store),
                                             "PATCH": answer(manage.patch_store),
                                             "DELETE": answer(manage.delete_store)}),
    route(DATASET + "/operations", {"GET": answer(manage.list_operations)}),
    route(DATASET + "/operations/{operation}:cancel",
          {"POST": answer(manage.cancel_operation)}),
    route(DATASET + "/operations/{operation}", {"GET": answer(manage.get_operation)}),
]

ROUTES: list[BaseRoute] = [
    route("/healthz", {"GET": healthz}),
    route("/dicomweb", SERVICE_ROOT),
    route(GOOGLE_STORE, SERVICE_ROOT),
    Mount("/dicomweb", app=Router(DICOMWEB, redirect_slashes=False)),
    Mount(GOOGLE_STORE, app=Router(GOOGLE_DICOMWEB, redirect_slashes=False)),
    *MANAGEMENT,
]
