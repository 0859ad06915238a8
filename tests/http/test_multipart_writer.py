"""multipart_stream / multipart_content_type: exact framing, streaming, and client interop."""

from collections.abc import AsyncIterable, AsyncIterator, Sequence

import pytest
import requests
from dicomweb_client import DICOMwebClient

from pacs.http.multipart_reader import MultipartReader
from pacs.http.multipart_writer import (
    Part,
    multipart_content_type,
    multipart_length,
    multipart_stream,
    new_boundary,
)


async def body_of(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def parts_of(*parts: Part) -> AsyncIterator[Part]:
    for part in parts:
        yield part


async def collect(stream: AsyncIterable[bytes]) -> list[bytes]:
    return [chunk async for chunk in stream]


async def test_exact_framing() -> None:
    parts = parts_of(
        Part({"Content-Type": "application/dicom"}, body_of(b"hello ", b"world")),
        Part({"Content-Type": "text/plain", "Content-Location": "/x"}, body_of()),
    )
    assert b"".join(await collect(multipart_stream(parts, "XYZ"))) == (
        b"--XYZ\r\nContent-Type: application/dicom\r\n\r\nhello world\r\n"
        b"--XYZ\r\nContent-Type: text/plain\r\nContent-Location: /x\r\n\r\n\r\n"
        b"--XYZ--\r\n"
    )


async def failing_body() -> AsyncIterator[bytes]:
    raise ValueError("cannot be made")
    yield b""  # pragma: no cover - makes this an async generator


async def test_an_optional_part_that_fails_before_its_first_byte_is_left_out() -> None:
    parts = parts_of(
        Part({"Content-Location": "/a"}, body_of(b"a"), optional=True),
        Part({"Content-Location": "/b"}, failing_body(), optional=True),
        Part({"Content-Location": "/c"}, body_of(b"c", b"c")),
    )
    assert b"".join(await collect(multipart_stream(parts, "XYZ"))) == (
        b"--XYZ\r\nContent-Location: /a\r\n\r\na\r\n"
        b"--XYZ\r\nContent-Location: /c\r\n\r\ncc\r\n--XYZ--\r\n")
    with pytest.raises(ValueError, match="cannot be made"):  # a part that is not optional
        await collect(multipart_stream(parts_of(Part({}, failing_body())), "XYZ"))


@pytest.mark.parametrize("payloads", [[], [b""], [b"x" * 1000, b"", b"\r\n--y"]])
async def test_length_is_exactly_what_is_streamed(payloads: list[bytes]) -> None:
    boundary = new_boundary()
    parts = [Part({"Content-Type": "application/dicom", "Content-Location": f"/i/{i}"},
                  body_of(p), len(p)) for i, p in enumerate(payloads)]
    streamed = b"".join(await collect(multipart_stream(parts_of(*parts), boundary)))
    assert multipart_length(parts, boundary) == len(streamed)
    assert multipart_length([*parts, Part({}, body_of())], boundary) is None


async def test_zero_parts_is_close_delimiter_only() -> None:
    body = b"".join(await collect(multipart_stream(parts_of(), "XYZ")))
    assert body == b"--XYZ--\r\n"
    reader = MultipartReader("XYZ")
    assert reader.feed(body) == []
    reader.close()
    assert reader.parts_seen == 0


async def test_body_chunks_stream_through_unjoined() -> None:
    pulled: list[str] = []

    async def body(name: str) -> AsyncIterator[bytes]:
        for index in range(3):
            pulled.append(f"{name}{index}")
            yield f"<{name}{index}>".encode()
        yield b""

    async def parts() -> AsyncIterator[Part]:
        for name in "ab":
            pulled.append(f"part {name}")
            yield Part({"Content-Type": "a/b"}, body(name))

    stream = multipart_stream(parts(), "XYZ")
    seen: list[tuple[bytes, list[str]]] = [(chunk, list(pulled)) async for chunk in stream]
    assert seen[:5] == [
        (b"--XYZ\r\nContent-Type: a/b\r\n\r\n", ["part a"]),
        (b"<a0>", ["part a", "a0"]),
        (b"<a1>", ["part a", "a0", "a1"]),
        (b"<a2>", ["part a", "a0", "a1", "a2"]),
        (b"\r\n", ["part a", "a0", "a1", "a2"]),
    ]
    assert b"" not in [chunk for chunk, _ in seen]
    assert len(seen) == 11


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "a/b\r\nX-Injected: 1"},
        {"Content-Type": "a/b\n"},
        {"Content Type": "a/b"},
        {"Content-Type:": "a/b"},
        {"": "a/b"},
        {"Content-Location": "/caf\u00e9"},
    ],
    ids=["crlf-in-value", "lf-in-value", "space-in-name", "colon-in-name", "empty-name", "latin"],
)
async def test_unsafe_headers_rejected(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        await collect(multipart_stream(parts_of(Part(headers, body_of(b"x"))), "XYZ"))


def test_new_boundary_is_fresh_and_acceptable_to_the_reader() -> None:
    boundaries = {new_boundary() for _ in range(100)}
    assert len(boundaries) == 100
    for boundary in boundaries:
        MultipartReader(boundary)


@pytest.mark.parametrize(
    ("args", "params", "expected"),
    [
        (
            ("application/dicom", "XYZ"),
            {},
            'multipart/related; type="application/dicom"; boundary=XYZ',
        ),
        (
            ("application/dicom", "XYZ"),
            {"transfer_syntax": "1.2.840.10008.1.2.1"},
            'multipart/related; type="application/dicom"; boundary=XYZ; '
            "transfer-syntax=1.2.840.10008.1.2.1",
        ),
        (
            ("application/octet-stream", "a:b=c"),
            {"transfer-syntax": "*"},
            'multipart/related; type="application/octet-stream"; boundary="a:b=c"; '
            "transfer-syntax=*",
        ),
        (
            ("image/jpeg", "XYZ"),
            {"start": 'say "hi" \\'},
            'multipart/related; type="image/jpeg"; boundary=XYZ; start="say \\"hi\\" \\\\"',
        ),
    ],
)
def test_content_type(args: tuple[str, str], params: dict[str, str], expected: str) -> None:
    assert multipart_content_type(*args, **params) == expected


class _Response(requests.Response):
    """A finished response carrying a fixed body, as requests builds one."""

    def __init__(self, content_type: str, body: bytes) -> None:
        super().__init__()
        self.status_code = 200
        self.headers["Content-Type"] = content_type
        self._content = body


@pytest.mark.parametrize(
    "payloads",
    [[b"one"], [b"first\r\n--", b"", b"\x00" * 1000 + b"--"]],
    ids=["single", "tricky"],
)
async def test_dicomweb_client_decodes_stream(payloads: Sequence[bytes]) -> None:
    boundary = new_boundary()
    parts = parts_of(*(Part({"Content-Type": "application/dicom"}, body_of(p)) for p in payloads))
    body = b"".join(await collect(multipart_stream(parts, boundary)))
    response = _Response(multipart_content_type("application/dicom", boundary), body)
    client = DICOMwebClient("http://localhost")
    decoded = list(client._decode_multipart_message(response, stream=False))
    assert decoded == list(payloads)
