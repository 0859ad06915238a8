"""The Cloud Healthcare API's management methods (spec section 2), v1 and v1beta1: projects
(Cloud Resource Manager's shape), locations, datasets, DICOM stores and operations. Each
handler reads the path, query and JSON body, makes one service call and answers its JSON."""

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from pacs.http.access import caller_of, resource_of
from pacs.http.addressing import API_VERSIONS, addressed, archive_of
from pacs.service import management, metrics, transfer
from pacs.service.errors import InvalidArgument, NotFound, TooLarge
from pacs.service.iam import held_permissions
from pacs.service.update_metadata import update_metadata as update_metadata_of

MAX_BODY_BYTES = 10 * 1024 * 1024  # Google: 10 MB for every request but a Store (spec 4.9)
Call = Callable[[Request], Awaitable[dict[str, Any]]]


def answer(call: Call) -> Callable[[Request], Awaitable[Response]]:
    """A handler answering `call`'s JSON, after checking the API version of the path."""
    async def handle(request: Request) -> Response:
        version = request.path_params.get("version", "v1")
        if version not in API_VERSIONS:
            raise NotFound(f"unknown API version {version!r}; use v1 or v1beta1")
        return Response(orjson.dumps(await call(request)), media_type="application/json")
    return handle


async def _raw_body(request: Request) -> bytes:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise TooLarge(f"the request body is larger than {MAX_BODY_BYTES} bytes")
    return bytes(data)


async def _json(request: Request, empty: Any) -> Any:
    """The request body as JSON (`empty` when there is none); 400 if it is not JSON."""
    data = await _raw_body(request)
    try:
        return orjson.loads(data) if data.strip() else empty
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"the request body is not valid JSON: {exc}") from exc


async def json_object(request: Request) -> dict[str, Any]:
    """The request body, a JSON object ({} when empty); 400 otherwise."""
    body = await _json(request, {})
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object")
    return body


def _page_size(request: Request) -> int | None:
    text = request.query_params.get("pageSize")
    if text is None:
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise InvalidArgument(f"pageSize must be an integer, not {text[:40]!r}") from exc


def _name(request: Request, *levels: str) -> str:
    """projects/P[/locations/L[/datasets/D[/dicomStores/S]]] from the path."""
    collections = {"project": "projects", "location": "locations", "dataset": "datasets",
                   "store": "dicomStores"}
    return "/".join(f"{collections[level]}/{request.path_params[level]}" for level in levels)


def _required(request: Request, parameter: str) -> str:
    value = request.query_params.get(parameter, "")
    if not value:
        raise InvalidArgument(f"the {parameter} query parameter is required")
    return value


LOCATION = ("project", "location")
DATASET = (*LOCATION, "dataset")
STORE = (*DATASET, "store")


async def list_projects(request: Request) -> dict[str, Any]:
    return await management.list_projects(archive_of(request))


async def get_project(request: Request) -> dict[str, Any]:
    return await management.get_project(archive_of(request), request.path_params["project"])


async def list_locations(request: Request) -> dict[str, Any]:
    return await management.list_locations(archive_of(request), request.path_params["project"])


async def get_location(request: Request) -> dict[str, Any]:
    return management.location_json(request.path_params["project"],
                                     request.path_params["location"])


async def create_dataset(request: Request) -> dict[str, Any]:
    return await management.create_dataset(
        archive_of(request), _name(request, *LOCATION), _required(request, "datasetId"),
        await json_object(request), request.path_params["version"])


async def list_datasets(request: Request) -> dict[str, Any]:
    return await management.list_datasets(archive_of(request), _name(request, *LOCATION),
                                          _page_size(request),
                                          request.query_params.get("pageToken", ""))


async def get_dataset(request: Request) -> dict[str, Any]:
    return await management.get_dataset(archive_of(request), _name(request, *DATASET))


async def patch_dataset(request: Request) -> dict[str, Any]:
    return await management.patch_dataset(archive_of(request), _name(request, *DATASET),
                                          await json_object(request),
                                          request.query_params.get("updateMask", ""))


async def delete_dataset(request: Request) -> dict[str, Any]:
    return await management.delete_dataset(archive_of(request), _name(request, *DATASET))


async def create_store(request: Request) -> dict[str, Any]:
    return await management.create_store(archive_of(request), _name(request, *DATASET),
                                         _required(request, "dicomStoreId"),
                                         await json_object(request))


async def list_stores(request: Request) -> dict[str, Any]:
    return await management.list_stores(archive_of(request), _name(request, *DATASET),
                                        _page_size(request),
                                        request.query_params.get("pageToken", ""),
                                        request.query_params.get("filter", ""))


async def get_store(request: Request) -> dict[str, Any]:
    return await management.get_store(archive_of(request), _name(request, *STORE))


async def patch_store(request: Request) -> dict[str, Any]:
    return await management.patch_store(archive_of(request), _name(request, *STORE),
                                        await json_object(request),
                                        request.query_params.get("updateMask", ""))


async def delete_store(request: Request) -> dict[str, Any]:
    return await management.delete_store(archive_of(request), _name(request, *STORE))


async def list_operations(request: Request) -> dict[str, Any]:
    return await management.list_operations(archive_of(request), _name(request, *DATASET),
                                            _page_size(request),
                                            request.query_params.get("pageToken", ""))


async def cancel_operation(request: Request) -> dict[str, Any]:
    return await management.cancel_operation(archive_of(request), _name(request, *DATASET),
                                             request.path_params["operation"])


async def get_operation(request: Request) -> dict[str, Any]:
    return await management.get_operation(archive_of(request), _name(request, *DATASET),
                                          request.path_params["operation"])


async def store_metrics(request: Request) -> dict[str, Any]:
    archive = archive_of(request)
    return await metrics.store_metrics(archive, await archive.stores.get(_name(request, *STORE)))


async def study_metrics(request: Request) -> dict[str, Any]:
    archive, store, target = await addressed(request)
    return await metrics.study_metrics(archive, store, target)


async def series_metrics(request: Request) -> dict[str, Any]:
    archive, store, target = await addressed(request)
    return await metrics.series_metrics(archive, store, target)


async def storage_info(request: Request) -> dict[str, Any]:
    archive, store, target = await addressed(request)
    return await metrics.storage_info(archive, store, target)


async def import_files(request: Request) -> dict[str, Any]:
    archive = archive_of(request)
    store = await archive.stores.get(_name(request, *STORE))
    return await transfer.start_import(archive, store, await json_object(request),
                                       request.path_params["version"])


async def export_files(request: Request) -> dict[str, Any]:
    archive = archive_of(request)
    store = await archive.stores.get(_name(request, *STORE))
    return await transfer.start_export(archive, store, await json_object(request),
                                       request.path_params["version"])


async def update_metadata(request: Request) -> dict[str, Any]:
    """v1beta1 only: a study or series update is a long-running operation, an instance's
    answers `{}`."""
    archive, store, target = await addressed(request)
    version = request.path_params["version"]
    if version != "v1beta1":
        raise NotFound("updateMetadata is a Cloud Healthcare API v1beta1 method")
    patch = await _json(request, None)
    count = await update_metadata_of(archive, store, target, patch)
    if target.instance is not None:
        return {}
    method = "UpdateSeriesMetadata" if target.series else "UpdateStudyMetadata"
    return await management.record_operation(
        archive, store.name.split("/dicomStores/")[0],
        f"google.cloud.healthcare.{version}.dicomweb.DicomWebService.{method}",
        {"@type": "type.googleapis.com/google.protobuf.Empty"}, version,
        {"success": str(count)})


def iam(on: str) -> tuple[Call, Call, Call]:
    """getIamPolicy, setIamPolicy and testIamPermissions of the resource of kind `on`."""
    async def get_policy(request: Request) -> dict[str, Any]:
        archive = archive_of(request)
        return await archive.policies.get(resource_of(request, archive.settings, on))

    async def set_policy(request: Request) -> dict[str, Any]:
        archive = archive_of(request)
        return await archive.policies.set(resource_of(request, archive.settings, on),
                                          (await json_object(request)).get("policy"))

    async def test_permissions(request: Request) -> dict[str, Any]:
        archive = archive_of(request)
        settings = archive.settings
        return await held_permissions(settings, archive.policies,
                                      await caller_of(request, settings),
                                      resource_of(request, settings, on),
                                      (await json_object(request)).get("permissions"))
    return get_policy, set_policy, test_permissions
