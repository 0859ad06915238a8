"""The whole URL surface in one table (PS3.18 10.4-10.6 resources plus delete).

The same DICOMweb routes serve `/dicomweb` (the default store) and the Cloud Healthcare API
paths `/{v1,v1beta1}/projects/{p}/locations/{l}/datasets/{d}/dicomStores/{s}/dicomWeb`.
"""

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router

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


Handler = Callable[[Request], Awaitable[Response]]


def resource(path: str, **handlers: Handler) -> Route:
    """One route per path, each method's handler looked up in `handlers`, so that a 405
    names every method the path allows (RFC 9110 15.5.6); HEAD is answered as GET."""
    async def dispatch(request: Request) -> Response:
        return await handlers["GET" if request.method == "HEAD" else request.method](request)
    return Route(path, dispatch, methods=list(handlers), name=path)


DICOMWEB: list[BaseRoute] = [
    resource("/studies", GET=search.search_studies, POST=store.store_instances),
    resource("/series", GET=search.search_series),
    resource("/instances", GET=search.search_instances),
    resource(STUDY, GET=retrieve.retrieve, POST=store.store_instances, DELETE=delete.delete),
    resource(STUDY + "/metadata", GET=retrieve.retrieve_metadata),
    resource(STUDY + "/series", GET=search.search_series),
    resource(STUDY + "/instances", GET=search.search_instances),
    resource(SERIES, GET=retrieve.retrieve, DELETE=delete.delete),
    resource(SERIES + "/metadata", GET=retrieve.retrieve_metadata),
    resource(SERIES + "/instances", GET=search.search_instances),
    resource(INSTANCE, GET=retrieve.retrieve, DELETE=delete.delete),
    resource(INSTANCE + "/metadata", GET=retrieve.retrieve_metadata),
    resource(FRAMES, GET=retrieve_frames.retrieve_frames),
    resource(INSTANCE + "/bulkdata/{path:path}", GET=retrieve.retrieve_bulkdata),
    *(resource(level + "/rendered", GET=retrieve_rendered.retrieve_rendered)
      for level in (STUDY, SERIES, INSTANCE, FRAMES)),
    *(resource(level + "/thumbnail", GET=retrieve_rendered.retrieve_thumbnail)
      for level in (STUDY, SERIES, INSTANCE, FRAMES)),
]

ROUTES: list[BaseRoute] = [
    resource("/healthz", GET=healthz),
    Mount("/dicomweb", app=Router(DICOMWEB, redirect_slashes=False)),
    Mount(GOOGLE_STORE, app=Router(DICOMWEB, redirect_slashes=False)),
]
