"""Errors as the Cloud Healthcare API shapes them: {"error": {"code", "message", "status"}}.

DICOM status codes used in responses are named here, in hex (PS3.4 Annex B, PS3.18 10.5.3).
"""

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("pacs")

# google.rpc.Code names for HTTP statuses (googleapis google/rpc/code.proto).
_RPC_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
    404: "NOT_FOUND", 405: "UNIMPLEMENTED", 406: "FAILED_PRECONDITION", 409: "ALREADY_EXISTS",
    411: "INVALID_ARGUMENT", 413: "INVALID_ARGUMENT", 415: "INVALID_ARGUMENT",
    416: "OUT_OF_RANGE", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 501: "UNIMPLEMENTED",
    503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}

# STOW-RS FailureReason values (PS3.18 Table 10.5.3-3 / PS3.4 Annex B.2.3).
PROCESSING_FAILURE = 0x0110  # also: already stored with other content (as Google answers)
OUT_OF_RESOURCES = 0xA700
DATA_SET_DOES_NOT_MATCH = 0xA900  # e.g. Study Instance UID differs from the request URL's
CANNOT_UNDERSTAND = 0xC000  # not DICOM, unreadable, required UIDs missing or invalid


class DicomWebError(Exception):
    """An error answered with `status` and a Google-style JSON body."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(DicomWebError):
    status = 400


class NotFound(DicomWebError):
    status = 404


class NotAcceptable(DicomWebError):
    status = 406


class Conflict(DicomWebError):
    status = 409


class PayloadTooLarge(DicomWebError):
    status = 413


class UnsupportedMediaType(DicomWebError):
    status = 415


class RangeNotSatisfiable(DicomWebError):
    status = 416


class Unavailable(DicomWebError):
    status = 503


def error_response(status: int, message: str) -> JSONResponse:
    """The Google error body for `status`."""
    body = {"error": {"code": status, "message": message,
                      "status": _RPC_STATUS.get(status, "UNKNOWN")}}
    return JSONResponse(body, status_code=status)


async def dicomweb_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DicomWebError)
    return error_response(exc.status, exc.message)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if exc.status_code != 404 else f"no such resource: {request.url.path}"
    return error_response(exc.status_code, message)


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error; the server log has the details")
