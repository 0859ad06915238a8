"""Answers built whole in memory (metadata, search results): gzip when the client accepts it
(RFC 9110 8.4.1, 12.5.3) and, for those with a version, ETag and If-None-Match → 304
(RFC 9110 8.8.3, 13.1.2)."""

import gzip

import anyio
from starlette.requests import Request
from starlette.responses import Response

from pacs.bounded_cache import BoundedCache
from pacs.settings import Settings

GZIP_MIN_BYTES = 1400  # a smaller body fits in one packet as it is
GZIP_LEVEL = 1  # the fastest: DICOM JSON still shrinks about 30 times
INLINE_GZIP_BYTES = 64 * 1024  # larger bodies are compressed off the event loop


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header value admits gzip (or x-gzip, or `*`) with q > 0."""
    weights: dict[str, float] = {}
    for item in (accept_encoding or "").split(","):
        coding, _, params = item.partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[coding.strip().lower()] = weight
    gzip_weight = weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0)))
    return gzip_weight > 0


def not_modified(request: Request, etag: str) -> Response | None:
    """304 when If-None-Match names `etag` (weak comparison) or is `*`; else None."""
    header = request.headers.get("if-none-match")
    if header is None:
        return None
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    if "*" in tags or etag.removeprefix("W/") in tags:
        return Response(status_code=304, headers=validators(etag))
    return None


def validators(etag: str) -> dict[str, str]:
    """The headers that let a client revalidate instead of fetching again."""
    return {"ETag": etag, "Cache-Control": "private, no-cache"}


def weak_etag(version: str, representation: str) -> str:
    """A weak validator (the gzip and identity codings of one answer are equivalent)."""
    return f'W/"{version}-{representation}"'


GzipCache = BoundedCache[bytes]


def gzip_cache(settings: Settings) -> GzipCache:
    """The gzip codings of versioned answers this worker keeps (its share of the budget)."""
    return BoundedCache(settings.gzip_cache_bytes // max(settings.server_workers, 1),
                        "gzip")


async def encoded_response(request: Request, body: bytes, media_type: str,
                           etag: str | None = None,
                           headers: dict[str, str] | None = None) -> Response:
    """`body` as `media_type`, gzip-coded when accepted and worth it, with `etag`'s
    validators (or a 304 when the client already holds that version). The gzip coding of a
    versioned body is kept (`app.state.gzip_cache`): viewers ask for the same metadata again
    and again, and it is only made once."""
    headers = {**(headers or {}), "Vary": "Accept, Accept-Encoding"}
    if etag is not None:
        unchanged = not_modified(request, etag)
        if unchanged is not None:
            return unchanged
        headers.update(validators(etag))
    if len(body) >= GZIP_MIN_BYTES and accepts_gzip(request.headers.get("accept-encoding")):
        cache: GzipCache = request.app.state.gzip_cache
        coded = cache.get(etag) if etag is not None else None
        if coded is None:
            coded = _gzip(body) if len(body) <= INLINE_GZIP_BYTES \
                else await anyio.to_thread.run_sync(_gzip, body)
            if etag is not None:
                cache.put(etag, coded, len(coded))
        body = coded
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=media_type, headers=headers)


def _gzip(body: bytes) -> bytes:
    return gzip.compress(body, GZIP_LEVEL, mtime=0)  # the same body, the same bytes
