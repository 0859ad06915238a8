"""The whole URL surface in one table (PS3.18 10.4-10.6 resources plus delete).

The same DICOMweb routes serve `/dicomweb` (the default store) and the Cloud Healthcare API
paths `/{v1,v1beta1}/projects/{p}/locations/{l}/datasets/{d}/dicomStores/{s}/dicomWeb`.
"""

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from pacs.names import ROUTE
from pacs.transactions import (
    delete,
    retrieve,
    retrieve_frames,
    retrieve_rendered,
    search,
    store,
)

STUDY = "/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{instance}"
FRAMES = INSTANCE + "/frames/{frames}"
GOOGLE_STORE = "/{version}" + ROUTE + "/dicomWeb"


async def healthz(request: Request) -> Response:
    """200 once the lifespan has opened the index and blob store."""
    return PlainTextResponse("ok")


DICOMWEB: list[BaseRoute] = [
    Route("/studies", store.store_instances, methods=["POST"]),
    Route("/studies", search.search_studies, methods=["GET"]),
    Route("/series", search.search_series, methods=["GET"]),
    Route("/instances", search.search_instances, methods=["GET"]),
    Route(STUDY, store.store_instances, methods=["POST"]),
    Route(STUDY, retrieve.retrieve, methods=["GET"]),
    Route(STUDY, delete.delete, methods=["DELETE"]),
    Route(STUDY + "/metadata", retrieve.retrieve_metadata, methods=["GET"]),
    Route(STUDY + "/series", search.search_series, methods=["GET"]),
    Route(STUDY + "/instances", search.search_instances, methods=["GET"]),
    Route(SERIES, retrieve.retrieve, methods=["GET"]),
    Route(SERIES, delete.delete, methods=["DELETE"]),
    Route(SERIES + "/metadata", retrieve.retrieve_metadata, methods=["GET"]),
    Route(SERIES + "/instances", search.search_instances, methods=["GET"]),
    Route(INSTANCE, retrieve.retrieve, methods=["GET"]),
    Route(INSTANCE, delete.delete, methods=["DELETE"]),
    Route(INSTANCE + "/metadata", retrieve.retrieve_metadata, methods=["GET"]),
    Route(FRAMES, retrieve_frames.retrieve_frames, methods=["GET"]),
    Route(INSTANCE + "/bulkdata/{path:path}", retrieve.retrieve_bulkdata, methods=["GET"]),
    *(Route(resource + "/rendered", retrieve_rendered.retrieve_rendered, methods=["GET"])
      for resource in (STUDY, SERIES, INSTANCE, FRAMES)),
    *(Route(resource + "/thumbnail", retrieve_rendered.retrieve_thumbnail, methods=["GET"])
      for resource in (STUDY, SERIES, INSTANCE, FRAMES)),
]

ROUTES: list[BaseRoute] = [
    Route("/healthz", healthz, methods=["GET"]),
    Mount("/dicomweb", routes=DICOMWEB),
    Mount(GOOGLE_STORE, routes=DICOMWEB),
]
