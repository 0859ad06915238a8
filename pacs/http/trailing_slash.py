"""Paths with a trailing slash are served as the same path without it (`/studies/?…`, as
seed 004 writes its samples), never redirected: a redirect costs a round trip, drops a POST
body with some clients, and behind a proxy names the internal host."""

from starlette.types import ASGIApp, Receive, Scope, Send


class TrailingSlash:
    """Pure ASGI middleware: `/a/b/` is routed as `/a/b` (the root `/` stays)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = dict(scope)
            scope["path"] = path.rstrip("/") or "/"
            raw = scope.get("raw_path")
            if isinstance(raw, bytes):
                scope["raw_path"] = raw.rstrip(b"/") or b"/"
        await self.app(scope, receive, send)
