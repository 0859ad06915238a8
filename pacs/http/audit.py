"""The audit log (`pacs serve --audit-log FILE`): one JSON line per guarded request saying
who did what to which resource with what result, in the spirit of IHE ATNA (PS3.15 A.5):
stores, retrieves, searches, deletes, policy changes and every refusal. Never a token (the
path is logged without its query, where `access_token` may travel), never pixel data."""

import datetime
import os
from pathlib import Path

import orjson
from starlette.requests import Request

from pacs.http.access import Access


class AuditLog:
    """Appends lines with O_APPEND, one write each, so that worker processes sharing the file
    do not interleave within a line."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def record(self, request: Request, access: Access, status: int) -> None:
        line = orjson.dumps({
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            "identity": access.identity, "client": request.client.host if request.client else None,
            "method": request.method, "path": request.url.path, "permission": access.permission,
            "resource": access.resource, "status": status,
            "outcome": "success" if status < 400 else "denied" if status in (401, 403)
            else "failure"}, option=orjson.OPT_APPEND_NEWLINE)
        os.write(self._fd, line)

    def close(self) -> None:
        os.close(self._fd)
