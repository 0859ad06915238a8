"""Delete (non-standard, as Google, Orthanc and Microsoft offer it): DELETE a study, series or
instance."""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pacs.http.addressing import addressed
from pacs.http.media_types import Offer
from pacs.http.transaction import Transaction
from pacs.service.delete import delete as delete_target


async def delete(request: Request) -> Response:
    """Remove everything under the addressed resource; 200 `{}` (Google's DeleteInstance)."""
    archive, store, target = await addressed(request)
    await delete_target(archive, store, target)
    return JSONResponse({})


DELETE = Transaction("Delete", delete, (Offer(False, "application/json"),))
