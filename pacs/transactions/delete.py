"""Delete (non-standard, as Google, Orthanc and Microsoft offer it): DELETE a study, series or
instance. Index rows go first, in one transaction; then the blobs they pointed at."""

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pacs.archive import addressed
from pacs.errors import NotFound


async def delete(request: Request) -> Response:
    """Remove everything under the addressed resource; 200 `{}` (Google's DeleteInstance)."""
    archive, store_id, target = await addressed(request)
    blob_names = await archive.index.delete(store_id, target.study, target.series,
                                            target.instance)
    if blob_names is None:
        raise NotFound(f"{target.describe()} not found")
    for name in blob_names:
        await anyio.to_thread.run_sync(archive.blobs.delete, name)
    return JSONResponse({})
