"""What a request addresses: the archive, the store context (the Cloud Healthcare API path's
store, or the default one for `/dicomweb`), the study, series or instance of the path, and the
root its URLs are built under."""

from starlette.requests import Request

from pacs.http.resource_urls import dicomweb_root
from pacs.names import StoreName
from pacs.service.archive import Archive
from pacs.service.errors import InvalidArgument, NotFound
from pacs.service.links import Links
from pacs.service.stores import StoreContext
from pacs.service.targets import Target, check_uid

API_VERSIONS = ("v1", "v1beta1")


def archive_of(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


async def store_of(request: Request) -> StoreContext:
    """The addressed store's context; NotFound for an unknown store or API version."""
    archive = archive_of(request)
    params = request.path_params
    if "store" not in params:
        return await archive.stores.get(archive.settings.default_store)
    if params["version"] not in API_VERSIONS:
        raise NotFound(f"unknown API version {params['version']!r}; use v1 or v1beta1")
    try:
        name = StoreName.of(params)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from exc
    return await archive.stores.get(str(name))


def path_uid(request: Request, name: str) -> str | None:
    """The UID path parameter `name`, checked; None if the route has none."""
    value = request.path_params.get(name)
    return None if value is None else check_uid(name, value)


def target_of(request: Request) -> Target:
    """The study, series or instance of the path (InvalidArgument for a bad UID)."""
    params = request.path_params
    return Target.of(params["study"], params.get("series"), params.get("instance"))


async def addressed(request: Request) -> tuple[Archive, StoreContext, Target]:
    """The archive, the store and the target of a request whose path names a study."""
    store = await store_of(request)
    return archive_of(request), store, target_of(request)


def links_of(request: Request) -> Links:
    """URLs under the DICOMweb root the client used."""
    return Links(dicomweb_root(request))
