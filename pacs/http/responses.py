"""Streaming response bodies: blob byte ranges and multipart/related of them."""

from collections.abc import AsyncIterator, Mapping, Sequence

import anyio
from starlette.responses import StreamingResponse

from pacs.http.multipart_writer import (
    Part,
    multipart_content_type,
    multipart_length,
    multipart_stream,
    new_boundary,
)
from storage.protocols import BlobStore
from storage.rows import Span


async def blob_spans(blobs: BlobStore, name: str, spans: Sequence[Span],
                     chunk: int) -> AsyncIterator[bytes]:
    """The bytes of `spans` of blob `name`, read in worker threads `chunk` bytes at a time."""
    for span in spans:
        offset, end = span.offset, span.offset + span.length
        while offset < end:
            data = await anyio.to_thread.run_sync(blobs.read, name, offset,
                                                  min(chunk, end - offset))
            if not data:
                raise OSError(f"blob {name} ends before byte {end}")
            offset += len(data)
            yield data


def multipart_response(parts: Sequence[Part], part_type: str,
                       params: Mapping[str, str] | None = None,
                       status: int = 200) -> StreamingResponse:
    """A streamed multipart/related response whose parts are of `part_type` (PS3.18 8.6.1.2);
    `params` are further Content-Type parameters such as transfer-syntax. With every part's
    length known it carries Content-Length: chunked encoding would copy every chunk again."""
    boundary = new_boundary()
    length = multipart_length(parts, boundary)
    headers = {"Content-Length": str(length)} if length is not None else None
    return StreamingResponse(multipart_stream(_each(parts), boundary), status_code=status,
                             headers=headers, media_type=multipart_content_type(
                                 part_type, boundary, **(params or {})))


async def _each(parts: Sequence[Part]) -> AsyncIterator[Part]:
    for part in parts:
        yield part
