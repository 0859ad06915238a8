"""Errors on HTTP, in the one place they are mapped: every refusal is answered with its
status and the Cloud Healthcare API's body, {"error": {"code", "message", "status"}}.

Domain errors carry a google.rpc.Code name, mapped to an HTTP status as Google maps them
(googleapis google/rpc/code.proto); errors of the HTTP exchange itself carry their status.
"""

import errno
import logging
from collections.abc import Mapping
from typing import ClassVar

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pacs.pixels.description import PixelError
from pacs.service.errors import (
    ArchiveError,
    CannotTranscode,
    InvalidArgument,
    TooLarge,
    Unavailable,
)
from storage.protocols import QueryTimeout

log = logging.getLogger("pacs")

STATUS_OF_CODE = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ABORTED": 409,
    "ALREADY_EXISTS": 409, "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "INTERNAL": 500,
    "UNKNOWN": 500, "DATA_LOSS": 500, "UNIMPLEMENTED": 501, "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
# Domain errors whose HTTP status is more specific than their code's.
STATUS_OF_ERROR: dict[type[ArchiveError], int] = {TooLarge: 413, CannotTranscode: 406}
# The code named in the body of a status that no domain error produces.
_CODE_OF_STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 405: "UNIMPLEMENTED",
                   406: "FAILED_PRECONDITION", 413: "INVALID_ARGUMENT",
                   415: "INVALID_ARGUMENT", 416: "OUT_OF_RANGE", 500: "INTERNAL"}
# Storage that cannot keep what a request writes, by errno: the status, code and what it
# means (507 Insufficient Storage, RFC 4918 11.5); nothing is half-written (blob before row,
# rows in one transaction), so the archive keeps serving reads.
_STORAGE_FAULTS = {
    errno.ENOSPC: (507, "RESOURCE_EXHAUSTED", "the archive's storage is full"),
    errno.EDQUOT: (507, "RESOURCE_EXHAUSTED", "the archive's storage quota is used up"),
    errno.EROFS: (503, "UNAVAILABLE", "the archive's storage is read-only"),
    errno.EACCES: (503, "UNAVAILABLE", "the archive's storage cannot be written"),
    errno.EIO: (503, "UNAVAILABLE", "the archive's storage failed to read or write"),
    # a remote index (PostgreSQL) or blob store that is down or unreachable
    errno.ECONNREFUSED: (503, "UNAVAILABLE", "the archive's storage cannot be reached"),
    errno.ECONNRESET: (503, "UNAVAILABLE", "the archive's storage connection failed"),
    errno.ETIMEDOUT: (503, "UNAVAILABLE", "the archive's storage did not answer"),
}


class HttpError(ArchiveError):
    """A refusal of the HTTP exchange itself (negotiation, framing, size), with its status."""

    status: ClassVar[int] = 400


class NotAcceptable(HttpError):
    status = 406
    code = "FAILED_PRECONDITION"


class UnsupportedMediaType(HttpError):
    status = 415
    code = "INVALID_ARGUMENT"


class RangeNotSatisfiable(HttpError):
    status = 416
    code = "OUT_OF_RANGE"


def error_response(status: int, message: str, code: str | None = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The Google error body for `status`."""
    body = {"error": {"code": status, "message": message,
                      "status": code or _CODE_OF_STATUS.get(status, "UNKNOWN")}}
    return JSONResponse(body, status_code=status, headers=headers)


def status_of(exc: Exception) -> int:
    """The HTTP status the handlers below answer `exc` with."""
    if isinstance(exc, HttpError):
        return exc.status
    if isinstance(exc, ArchiveError):
        return STATUS_OF_ERROR.get(type(exc), STATUS_OF_CODE[exc.code])
    if isinstance(exc, HTTPException):
        return exc.status_code
    if isinstance(exc, OSError) and exc.errno in _STORAGE_FAULTS:
        return _STORAGE_FAULTS[exc.errno][0]
    return {PixelError: 400, QueryTimeout: 503}.get(type(exc), 500)


async def _archive_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ArchiveError)
    status = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if exc.code == "UNAUTHENTICATED" else None
    return error_response(status, exc.message, exc.code, headers)


async def _pixel_error(request: Request, exc: Exception) -> Response:
    return await _archive_error(request, InvalidArgument(str(exc)))


async def _query_timeout(request: Request, exc: Exception) -> Response:
    return await _archive_error(request, Unavailable(
        f"the query took too long and was stopped: {exc}"))


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no route, wrong method), keeping their headers (a 405
    names the allowed methods in `Allow`, RFC 9110 15.5.6)."""
    assert isinstance(exc, HTTPException)
    message = exc.detail if exc.status_code != 404 else f"no such resource: {request.url.path}"
    return error_response(exc.status_code, message, headers=exc.headers)


async def _storage_fault(request: Request, exc: Exception) -> Response:
    """A write the storage refused: logged once, without a traceback, and answered."""
    assert isinstance(exc, OSError)
    if exc.errno not in _STORAGE_FAULTS:
        return await _internal_error(request, exc)
    status, code, meaning = _STORAGE_FAULTS[exc.errno]
    log.error("%s %s: %s: %s", request.method, request.url.path, meaning, exc)
    return error_response(status, f"{meaning}; the request was not carried out", code)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error; the server log has the details")


EXCEPTION_HANDLERS = {
    ArchiveError: _archive_error,
    PixelError: _pixel_error,
    QueryTimeout: _query_timeout,
    HTTPException: _http_exception,
    OSError: _storage_fault,
    Exception: _internal_error,
}
