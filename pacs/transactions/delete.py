"""Delete (non-standard, as Google, Orthanc and Microsoft offer it): DELETE a study, series or
instance."""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pacs.http.addressing import addressed
from pacs.http.media_types import Offer
from pacs.http.transaction import Transaction
from pacs.service.delete import delete as delete_target
from pacs.service.management import record_operation


async def delete(request: Request) -> Response:
    """Remove everything under the addressed resource; 200 `{}` (Google's DeleteInstance),
    or, where the store's profile says so, the name of the long-running operation of a study
    or series delete (Google's DeleteStudy and DeleteSeries, spec 1.3)."""
    archive, store, target = await addressed(request)
    await delete_target(archive, store, target)
    if not store.profile.delete_operations or target.instance is not None:
        return JSONResponse({})
    version = request.path_params.get("version", "v1")
    method = "DeleteSeries" if target.series else "DeleteStudy"
    operation = await record_operation(
        archive, store.name.split("/dicomStores/")[0],
        f"google.cloud.healthcare.{version}.dicomweb.DicomWebService.{method}",
        {"@type": "type.googleapis.com/google.protobuf.Empty"}, version)
    return JSONResponse({"name": operation["name"]})


DELETE = Transaction("Delete", "dicomWebDelete", delete, (Offer(False, "application/json"),))
