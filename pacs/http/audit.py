"""What the audit log (pacs/service/audit.py) records of an HTTP request: the path without
its query, where `access_token` may travel."""

from typing import Any

from starlette.requests import Request

from pacs.http.access import Access


def request_entry(request: Request, access: Access, status: int) -> dict[str, Any]:
    """The audit entry of a guarded request, once answered with `status`."""
    return {"identity": access.identity,
            "client": request.client.host if request.client else None,
            "method": request.method, "path": request.url.path,
            "permission": access.permission, "resource": access.resource, "status": status,
            "outcome": "success" if status < 400 else "denied" if status in (401, 403)
            else "failure"}
