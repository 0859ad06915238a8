"""The whole URL surface in one table (PS3.18 10.4-10.6 resources plus delete, and the Cloud
Healthcare API's management methods).

The same DICOMweb routes serve `/dicomweb` (the default store) and the Cloud Healthcare API
paths `/{v1,v1beta1}/projects/{p}/locations/{l}/datasets/{d}/dicomStores/{s}/dicomWeb`.
"""

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router

from pacs.http.access import Access, Permission, check
from pacs.http.audit import request_entry
from pacs.http.errors import error_response, status_of
from pacs.http.request_metrics import ROUTE_KEY
from pacs.http.transaction import Handler, Transaction
from pacs.http.viewer import Viewer
from pacs.names import ROUTE
from pacs.service.audit import AuditLog
from pacs.service.iam import AUTHENTICATED
from pacs.service.metrics import store_sizes
from pacs.telemetry import CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE
from pacs.telemetry import exposition
from pacs.transactions import (
    delete,
    retrieve,
    retrieve_frames,
    retrieve_rendered,
    search,
    store,
    worklist,
)
from pacs.transactions import management as manage
from pacs.transactions.capabilities import Resource, capabilities
from pacs.transactions.management import Call, answer

STUDY = "/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{instance}"
FRAMES = INSTANCE + "/frames/{frames}"
GOOGLE_STORE = "/{version}" + ROUTE + "/dicomWeb"


async def healthz(request: Request) -> Response:
    """Readiness: 200 while the index and the blob store can be reached, else 503 saying
    which cannot (a load balancer then sends requests elsewhere); answered at once from the
    last background check (pacs/service/health.py)."""
    problems = request.app.state.readiness.problems  # the last background check's
    if problems:
        return error_response(503, "not ready: " + "; ".join(problems), "UNAVAILABLE")
    return PlainTextResponse("ok")


async def livez(request: Request) -> Response:
    """Liveness: 200 while the process answers at all (restart it otherwise)."""
    return PlainTextResponse("ok")


async def prometheus(request: Request) -> Response:
    """Prometheus metrics of every worker, and each store's size (pacs/telemetry.py)."""
    sizes = [(row.name, held.instances, held.blob_bytes)
             for row, held in await store_sizes(request.app.state.archive)]
    return Response(exposition(sizes), media_type=PROMETHEUS_CONTENT_TYPE)


async def viewer(request: Request) -> Response:
    """The OHIF viewer of `--viewer` (pacs/http/viewer.py); 404 when none is configured."""
    served: Viewer | None = request.app.state.viewer
    if served is None:
        return error_response(404, "no viewer is served: start pacs serve with --viewer DIR",
                              "NOT_FOUND")
    return await served.serve(request)


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


Guarded = tuple[Permission | None, Handler]  # what a method needs, and what it does


def route(path: str, methods: Mapping[str, Guarded]) -> Route:
    """One route per path, each method's permission and handler looked up in `methods`, so
    that a 405 names every method the path allows (RFC 9110 15.5.6) and one place checks
    every permission and writes the audit log; HEAD is answered (and checked) as GET."""
    async def dispatch(request: Request) -> Response:
        request.scope[ROUTE_KEY] = path or "/"
        permission, handler = methods["GET" if request.method == "HEAD" else request.method]
        access, status = Access(), 500
        try:
            await check(request, permission, access)
            response = await handler(request)
            status = response.status_code
            return response
        except Exception as exc:
            status = status_of(exc)
            raise
        finally:
            audit: AuditLog | None = request.app.state.audit
            if audit is not None and permission is not None:
                audit.record(request_entry(request, access, status))
    return Route(path, dispatch, methods=list(methods), name=path or "/")


def _store(permission: str) -> Permission:
    return Permission(f"healthcare.dicomStores.{permission}", "store")


READ = _store("dicomWebRead")  # spec 6.2: every search and retrieve
WORKLIST_READ = Permission("pacs.worklist.get", "")
WORKLIST_WRITE = Permission("pacs.worklist.update", "")
DESCRIBE = _store("get")  # capabilities, metrics: what a store is, not its data


def _routes(resources: list[Resource]) -> list[BaseRoute]:
    """Each resource's methods, and OPTIONS describing it (PS3.18 8.9)."""
    return [route(r.path, {**{m: (_store(t.permission), t.handler)
                              for m, t in r.methods.items()},
                           "OPTIONS": (DESCRIBE, capabilities([r]))}) for r in resources]


DICOMWEB = _routes(RESOURCES)
# Google's own methods on a store's DICOMweb resources: the v1beta1 upsert and metadata
# update, and metrics (`:action` methods, spec 2.4).
UPDATE = _store("dicomWebUpdate")
GOOGLE_DICOMWEB: list[BaseRoute] = [
    route(STUDY + ":getStudyMetrics", {"GET": (DESCRIBE, answer(manage.study_metrics))}),
    route(SERIES + ":getSeriesMetrics", {"GET": (DESCRIBE, answer(manage.series_metrics))}),
    route(INSTANCE + ":getStorageInfo", {"GET": (DESCRIBE, answer(manage.storage_info))}),
    *DICOMWEB,
    route("/studies", {"PUT": (UPDATE, store.UPSERT.handler)}),  # v1beta1 only, as Google
    route(STUDY, {"PUT": (UPDATE, store.UPSERT.handler)}),
    *(route(level + "/metadata", {"PATCH": (UPDATE, answer(manage.update_metadata))})
      for level in (STUDY, SERIES, INSTANCE)),
]
SERVICE_ROOT: dict[str, Guarded] = {  # the whole service (PS3.18 8.9)
    "OPTIONS": (DESCRIBE, capabilities(RESOURCES))}

PROJECT = "/{version}/projects/{project}"
LOCATION = PROJECT + "/locations/{location}"
DATASET = LOCATION + "/datasets/{dataset}"


def _on(level: str, permission: str, call: Call) -> Guarded:
    """A management method: Google's permission on the resource of `level` (spec 6.2)."""
    return Permission(permission, level), answer(call)


def _iam(path: str, on: str, service: str) -> list[BaseRoute]:
    """getIamPolicy, setIamPolicy and testIamPermissions of a project, dataset or store; the
    last needs only a credential (it answers what the caller holds)."""
    get, set_, test = manage.iam(on)
    method = "POST" if on == "project" else "GET"  # Cloud Resource Manager POSTs it
    return [route(path + ":getIamPolicy", {method: _on(on, f"{service}.getIamPolicy", get)}),
            route(path + ":setIamPolicy", {"POST": _on(on, f"{service}.setIamPolicy", set_)}),
            route(path + ":testIamPermissions", {"POST": _on(on, AUTHENTICATED, test)})]


# The Cloud Healthcare API's management methods (and Cloud Resource Manager's projects).
MANAGEMENT: list[BaseRoute] = [
    *_iam(PROJECT, "project", "resourcemanager.projects"),
    *_iam(DATASET, "dataset", "healthcare.datasets"),
    *_iam(DATASET + "/dicomStores/{store}", "store", "healthcare.dicomStores"),
    route("/{version}/projects", {"GET": (Permission("resourcemanager.projects.list", ""),
                                          answer(manage.list_projects))}),
    route(PROJECT, {"GET": _on("project", "resourcemanager.projects.get",
                               manage.get_project)}),
    route(PROJECT + "/locations", {"GET": _on("project", "healthcare.locations.list",
                                              manage.list_locations)}),
    route(LOCATION, {"GET": _on("location", "healthcare.locations.get", manage.get_location)}),
    route(LOCATION + "/datasets", {
        "GET": _on("location", "healthcare.datasets.list", manage.list_datasets),
        "POST": _on("location", "healthcare.datasets.create", manage.create_dataset)}),
    route(DATASET, {
        "GET": _on("dataset", "healthcare.datasets.get", manage.get_dataset),
        "PATCH": _on("dataset", "healthcare.datasets.update", manage.patch_dataset),
        "DELETE": _on("dataset", "healthcare.datasets.delete", manage.delete_dataset)}),
    route(DATASET + "/dicomStores", {
        "GET": _on("dataset", "healthcare.dicomStores.list", manage.list_stores),
        "POST": _on("dataset", "healthcare.dicomStores.create", manage.create_store)}),
    route(DATASET + "/dicomStores/{store}:getDICOMStoreMetrics", {
        "GET": _on("store", "healthcare.dicomStores.get", manage.store_metrics)}),
    route(DATASET + "/dicomStores/{store}:import", {
        "POST": _on("store", "healthcare.dicomStores.import", manage.import_files)}),
    route(DATASET + "/dicomStores/{store}:export", {
        "POST": _on("store", "healthcare.dicomStores.export", manage.export_files)}),
    route(DATASET + "/dicomStores/{store}", {
        "GET": _on("store", "healthcare.dicomStores.get", manage.get_store),
        "PATCH": _on("store", "healthcare.dicomStores.update", manage.patch_store),
        "DELETE": _on("store", "healthcare.dicomStores.delete", manage.delete_store)}),
    route(DATASET + "/operations", {
        "GET": _on("dataset", "healthcare.operations.list", manage.list_operations)}),
    route(DATASET + "/operations/{operation}:cancel", {
        "POST": _on("dataset", "healthcare.operations.cancel", manage.cancel_operation)}),
    route(DATASET + "/operations/{operation}", {
        "GET": _on("dataset", "healthcare.operations.get", manage.get_operation)}),
]

ROUTES: list[BaseRoute] = [
    route("/healthz", {"GET": (None, healthz)}),  # public: a load balancer's probe
    route("/readyz", {"GET": (None, healthz)}),  # the same, by the Kubernetes name
    route("/livez", {"GET": (None, livez)}),  # public: a supervisor's probe
    # open while authentication is off (loopback); else only for those holding every
    # permission (--admin): store names and sizes are not for everyone
    route("/metrics", {"GET": (Permission("pacs.metrics.get", ""), prometheus)}),
    # public: the viewer's code holds no data, and its requests for data are checked as any
    route("/viewer", {"GET": (None, viewer)}),
    route("/viewer/{path:path}", {"GET": (None, viewer)}),
    # the gateway's worklist: whoever holds every permission (--admin), open while
    # authentication is off (loopback)
    route("/worklist", {"GET": (WORKLIST_READ, answer(worklist.list_items)),
                        "POST": (WORKLIST_WRITE, answer(worklist.create_item))}),
    route("/worklist/{item}", {"GET": (WORKLIST_READ, answer(worklist.get_item)),
                               "PUT": (WORKLIST_WRITE, answer(worklist.put_item)),
                               "DELETE": (WORKLIST_WRITE, answer(worklist.delete_item))}),
    route("/dicomweb", SERVICE_ROOT),
    route(GOOGLE_STORE, SERVICE_ROOT),
    Mount("/dicomweb", app=Router(DICOMWEB, redirect_slashes=False)),
    Mount(GOOGLE_STORE, app=Router(GOOGLE_DICOMWEB, redirect_slashes=False)),
    *MANAGEMENT,
]
