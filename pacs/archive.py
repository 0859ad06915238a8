"""The objects every request works with, opened once in the lifespan and kept in app state."""

from dataclasses import dataclass

from starlette.requests import Request

from pacs.errors import BadRequest, NotFound
from pacs.pixels.engine import PixelEngine
from pacs.settings import Settings
from storage.protocols import BlobStore, InstanceIndex
from storage.rows import InstanceLocation, StoreRow
from storage.uids import is_valid_uid

API_VERSIONS = ("v1", "v1beta1")


@dataclass(frozen=True)
class Archive:
    """Settings, the index and the blob store, and the pixel workers with their caches of
    immutable results; no other state lives in the server."""

    settings: Settings
    index: InstanceIndex
    blobs: BlobStore
    pixels: PixelEngine


def archive_of(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


def store_name(request: Request) -> str:
    """The store a request addresses: the Google path's, or the default for `/dicomweb`."""
    params = request.path_params
    if "store" not in params:
        return archive_of(request).settings.default_store
    if params["version"] not in API_VERSIONS:
        raise NotFound(f"unknown API version {params['version']!r}; use v1 or v1beta1")
    return ("projects/{project}/locations/{location}/datasets/{dataset}/dicomStores/{store}"
            .format(**params))


async def resolve_store(request: Request) -> StoreRow:
    """The addressed store's row, or 404 with a Google-style body."""
    name = store_name(request)
    row = await archive_of(request).index.get_store(name)
    if row is None:
        raise NotFound(f"DICOM store {name} not found")
    return row


def path_uid(request: Request, name: str) -> str:
    """A UID from the URL path, checked before it goes anywhere (PS3.5 9.1)."""
    value: str = request.path_params[name]
    if not is_valid_uid(value):
        raise BadRequest(f"invalid {name} UID {value[:80]!r}: a UID is digits and dots, "
                         "at most 64 characters")
    return value


@dataclass(frozen=True)
class Target:
    """The study, series or instance a request's path names, UIDs checked."""

    study: str
    series: str | None = None
    instance: str | None = None

    def describe(self) -> str:
        if self.instance is not None:
            return f"instance {self.instance} of series {self.series} in study {self.study}"
        if self.series is not None:
            return f"series {self.series} in study {self.study}"
        return f"study {self.study}"


def target_of(request: Request) -> Target:
    params = request.path_params
    return Target(path_uid(request, "study"),
                  path_uid(request, "series") if "series" in params else None,
                  path_uid(request, "instance") if "instance" in params else None)


async def addressed(request: Request) -> tuple[Archive, int, Target]:
    """The archive, the addressed store's id and the study, series or instance in the path
    (404 for an unknown store, 400 for a bad UID)."""
    archive = archive_of(request)
    store = await resolve_store(request)
    return archive, store.id, target_of(request)


async def locate(request: Request) -> tuple[Archive, list[InstanceLocation]]:
    """The instances under the request's target, in order; 404 if there are none."""
    archive, store_id, target = await addressed(request)
    found = await archive.index.locate(store_id, target.study, target.series, target.instance)
    if not found:
        raise NotFound(f"{target.describe()} not found")
    return archive, found
