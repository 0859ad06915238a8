"""Streamed multipart/related response bodies (PS3.18 8.6.1.2)."""

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from starlette.responses import StreamingResponse

from pacs.dicom.dicom_xml import to_native_xml
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


DICOM_XML = "application/dicom+xml"


def native_xml_response(datasets: Sequence[dict[str, Any]],
                        namespace: str | None) -> StreamingResponse:
    """DICOM JSON datasets as multipart/related; type="application/dicom+xml", one Native
    DICOM Model document per part (PS3.18 8.7.3.1.2, PS3.19 A.1)."""
    documents = [to_native_xml(dataset, namespace) for dataset in datasets]
    return multipart_response([Part({"Content-Type": DICOM_XML}, once(document),
                                    len(document)) for document in documents], DICOM_XML)


async def once(data: bytes) -> AsyncIterator[bytes]:
    """A body of bytes already at hand, as a part's stream."""
    yield data
