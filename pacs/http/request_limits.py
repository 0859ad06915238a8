"""Requests past any size DICOMweb needs are refused before routing, with the Google error
body: a query string over `max_query_bytes` with 414 URI Too Long (RFC 9110 15.5.15), and
more than `max_header_count` header fields, or more than `max_header_bytes` of them, with
431 Request Header Fields Too Large (RFC 6585 5). uvicorn's HTTP parser has no header limit
of its own and answers an overlong URL with a plain-text 400."""

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from pacs.http.errors import error_response
from pacs.settings import Settings


class RequestLimits:
    """Pure ASGI middleware applying the request size limits of `settings`."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refusal(scope) if scope["type"] == "http" else None
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        settings = self.settings
        query = len(scope.get("query_string", b""))
        if query > settings.max_query_bytes:
            return error_response(414, f"the query string is {query} bytes; at most "
                                  f"{settings.max_query_bytes} are read", "INVALID_ARGUMENT")
        headers = scope.get("headers", [])
        size = sum(len(name) + len(value) for name, value in headers)
        if len(headers) > settings.max_header_count or size > settings.max_header_bytes:
            return error_response(431, f"{len(headers)} header fields of {size} bytes; at "
                                  f"most {settings.max_header_count} fields of "
                                  f"{settings.max_header_bytes} bytes are read",
                                  "INVALID_ARGUMENT")
        return None
