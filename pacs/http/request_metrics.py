"""Counting every HTTP exchange for Prometheus (pacs/telemetry.py): requests by route
template, method and status, their duration to the end of the answer, and body bytes in
and out. The route template is what the dispatcher of the route matched (`ROUTE_KEY`), so a
label never holds a UID."""

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pacs.telemetry import BYTES_IN, BYTES_OUT, LATENCY, REQUESTS

ROUTE_KEY = "pacs.route"  # set in the scope by routes.py's dispatcher
UNMATCHED = "(no route)"


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
            REQUESTS.labels(route, method, str(status)).inc()
            LATENCY.labels(route, method).observe(time.perf_counter() - start)
            BYTES_IN.labels(route).inc(received)
            BYTES_OUT.labels(route).inc(sent)
