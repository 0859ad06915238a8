"""Streamed multipart/related response bodies (PS3.18 8.6.1.2)."""

from collections.abc import AsyncIterator, Mapping, Sequence

from starlette.responses import StreamingResponse

from pacs.http.multipart_writer import (
    Part,
    multipart_content_type,
    multipart_length,
    multipart_stream,
    new_boundary,
)


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
