"""Delete (non-standard, as Google, Orthanc and Microsoft offer it): DELETE a study, series or
instance. Index rows go first, in one transaction; then the blobs they pointed at."""

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pacs.archive import archive_of, path_uid, resolve_store
from pacs.errors import NotFound


async def delete(request: Request) -> Response:
    """Remove everything under the addressed resource; 200 `{}` (Google's DeleteInstance)."""
    archive = archive_of(request)
    store = await resolve_store(request)
    params = request.path_params
    study = path_uid(request, "study")
    series = path_uid(request, "series") if "series" in params else None
    instance = path_uid(request, "instance") if "instance" in params else None
    blob_names = await archive.index.delete(store.id, study, series, instance)
    if blob_names is None:
        what = instance or series or study
        raise NotFound(f"{what} not found in this store")
    for name in blob_names:
        await anyio.to_thread.run_sync(archive.blobs.delete, name)
    return JSONResponse({})
