"""Counting every HTTP exchange for Prometheus (pacs/telemetry.py): requests by route
template, method and status, their duration to the end of the answer, and body bytes in
and out. The route template is what the dispatcher of the route matched (`ROUTE_KEY`), so a
label never holds a UID."""

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pacs.http.log_redaction import redact
from pacs.logs import ACCESS_LOGGER
from pacs.telemetry import BYTES_IN, BYTES_OUT, LATENCY, REQUESTS

ROUTE_KEY = "pacs.route"  # set in the scope by routes.py's dispatcher
UNMATCHED = "(no route)"
access = logging.getLogger(ACCESS_LOGGER)


class RequestMetrics:
    """ASGI middleware; outermost, so refusals before routing are counted too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        received = sent = 0
        status = 500

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal sent, status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            route = scope.get(ROUTE_KEY, UNMATCHED)
            method = scope["method"]
            seconds = time.perf_counter() - start
            REQUESTS.labels(route, method, str(status)).inc()
            LATENCY.labels(route, method).observe(seconds)
            BYTES_IN.labels(route).inc(received)
            BYTES_OUT.labels(route).inc(sent)
            _log(scope, status, seconds, received, sent)


def _log(scope: Scope, status: int, seconds: float, received: int, sent: int) -> None:
    """The request's one access-log line (its query's access_token redacted)."""
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope.get("path", "") + (f"?{redact(query)}" if query else "")
    client = scope.get("client")
    fields = {"client": f"{client[0]}:{client[1]}" if client else "-",
              "method": scope["method"], "path": path, "status": status,
              "duration_ms": round(seconds * 1000, 1), "bytes_in": received, "bytes_out": sent}
    access.info('%s "%s %s" %d %.1f ms', fields["client"], fields["method"], path, status,
                fields["duration_ms"], extra=fields)
