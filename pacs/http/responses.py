"""multipart/related response bodies (PS3.18 8.6.1.2): streamed, or sent from memory."""

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from pacs.dicom.dicom_xml import to_native_xml
from pacs.http.multipart_writer import (
    Part,
    multipart_chunks,
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


class ChunksResponse(Response):
    """A body already in memory as chunks, sent as they are: not copied into one buffer, and
    without the task a streamed body needs to notice a disconnect (nothing is left to make)."""

    def __init__(self, chunks: list[bytes], media_type: str) -> None:
        super().__init__(None, media_type=media_type)
        self.headers["content-length"] = str(sum(map(len, chunks)))
        self.chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        for index, chunk in enumerate(self.chunks, 1):
            await send({"type": "http.response.body", "body": chunk,
                        "more_body": index < len(self.chunks)})


def buffered_multipart_response(parts: Sequence[tuple[Mapping[str, str], bytes]],
                                part_type: str, params: Mapping[str, str] | None = None
                                ) -> ChunksResponse:
    """A multipart/related response of parts (headers, body) already in memory."""
    boundary = new_boundary()
    return ChunksResponse(multipart_chunks(parts, boundary),
                          multipart_content_type(part_type, boundary, **(params or {})))


DICOM_XML = "application/dicom+xml"


def native_xml_response(datasets: Sequence[dict[str, Any]],
                        namespace: str | None) -> ChunksResponse:
    """DICOM JSON datasets as multipart/related; type="application/dicom+xml", one Native
    DICOM Model document per part (PS3.18 8.7.3.1.2, PS3.19 A.1)."""
    return buffered_multipart_response(
        [({"Content-Type": DICOM_XML}, to_native_xml(dataset, namespace))
         for dataset in datasets], DICOM_XML)
