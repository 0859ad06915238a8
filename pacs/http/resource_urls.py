"""Absolute RetrieveURL / BulkDataURI values, built from the request (PS3.18 8.7.3.1).

An operator may pin the public base URL (`--public-url`). Otherwise the URLs follow the
request, and X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-Prefix are honoured only
from the proxies configured as trusted (`--forwarded-allow-ips`, as uvicorn names it), so
that no client can make the server hand out URLs of a host of its choosing.
"""

from starlette.requests import Request

from pacs.settings import Settings


def dicomweb_root(request: Request) -> str:
    """The DICOMweb root the client addressed, e.g. `https://host/v1/projects/…/dicomWeb`."""
    settings: Settings = request.app.state.archive.settings
    if settings.public_url:
        return settings.public_url.rstrip("/") + _mount_path(request)
    headers = request.headers
    client = request.client.host if request.client else ""
    trusted = "*" in settings.forwarded_allow_ips or client in settings.forwarded_allow_ips
    forwarded = {k: v for k, v in headers.items() if k.startswith("x-forwarded-")} \
        if trusted else {}
    # from the scope, not request.url: parsing a whole URL cost more than the rest together
    scheme: str = forwarded.get("x-forwarded-proto") or request.scope["scheme"]
    scheme = scheme.split(",")[0].strip()
    host = forwarded.get("x-forwarded-host") or headers.get("host") or request.url.netloc
    host = host.split(",")[0].strip()
    prefix = forwarded.get("x-forwarded-prefix", "").rstrip("/")
    if not forwarded and ":" not in host.strip("[]"):
        host = _with_server_port(host, scheme, request.scope.get("server"))
    return f"{scheme}://{host}{prefix}{_mount_path(request)}"


def _with_server_port(host: str, scheme: str, server: tuple[str, int] | None) -> str:
    """Add the port the request came in on when a direct client's Host header omits it
    (dicomweb-client sends `Host: 127.0.0.1` for `http://127.0.0.1:8080`)."""
    default = 443 if scheme == "https" else 80
    if server is None or server[1] in (None, default):
        return host
    return f"{host}:{server[1]}"


def _mount_path(request: Request) -> str:
    """The path of the DICOMweb root the route is mounted at (`/dicomweb` or the Google path):
    the Mount's root_path, so a store or dataset named `dicomWeb` cannot be mistaken for it;
    for the service root itself, its own path."""
    return str(request.scope.get("root_path") or request.url.path)

