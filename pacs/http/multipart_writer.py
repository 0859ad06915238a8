"""Stream ``multipart/related`` response bodies (RFC 2387; DICOM PS3.18 §8.6.1.2).

Framing is CRLF throughout (RFC 2046 §5.1.1); part bodies are passed through chunk by chunk.
"""

import logging
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger("pacs")
# RFC 9110 §5.6.2: token = 1*tchar
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def new_boundary() -> str:
    """Return a random boundary; RFC 2046 §5.1.1 requires it to occur in no part."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Part:
    """One body part: its MIME headers, its bytes as a stream, and their count if known.
    An `optional` part, one that names what it holds (Content-Location), is left out when
    its body fails before its first byte: the response stays whole and the client sees
    which resource is missing, where otherwise the body would be cut off after its 200."""

    headers: Mapping[str, str]
    body: AsyncIterable[bytes]
    length: int | None = None
    optional: bool = False


def multipart_length(parts: Sequence[Part], boundary: str) -> int | None:
    """The exact size of `multipart_stream(parts, boundary)`, if every part's length is known
    (so a response can carry Content-Length instead of being chunked)."""
    total = len(boundary) + 6  # --boundary--CRLF
    for part in parts:
        if part.length is None:
            return None
        total += len(boundary) + 4 + len(_encode_headers(part.headers)) + 2 + part.length + 2
    return total


async def multipart_stream(parts: AsyncIterable[Part], boundary: str) -> AsyncIterator[bytes]:
    """Yield each part as delimiter, headers, blank line, body, CRLF; then the close delimiter.

    With no parts the body is the close delimiter alone (RFC 2046 §5.1.1 framing).
    """
    delimiter = b"--" + boundary.encode("ascii")
    async for part in parts:
        chunks = aiter(part.body)
        first = b""
        if part.optional:  # its first bytes before its headers: it may yet be left out
            try:
                first = await anext(chunks, b"")
            except Exception as exc:  # what the stored data holds, not a fault of ours
                log.warning("part %s left out of a multipart response: %s",
                            part.headers.get("Content-Location", "(unnamed)"), exc)
                continue
        yield _opening(delimiter, part.headers)
        if first:
            yield first
        async for chunk in chunks:
            if chunk:
                yield chunk
        yield b"\r\n"
    yield delimiter + b"--\r\n"


def multipart_chunks(parts: Sequence[tuple[Mapping[str, str], bytes]], boundary: str
                     ) -> list[bytes]:
    """The framing of `multipart_stream` for parts already in memory (headers, body): the
    bodies as they are, the framing between them joined, so that no body is copied."""
    delimiter = b"--" + boundary.encode("ascii")
    chunks, framing = [], b""
    for headers, body in parts:
        chunks += [framing + _opening(delimiter, headers), body]
        framing = b"\r\n"
    chunks.append(framing + delimiter + b"--\r\n")
    return chunks


def _opening(delimiter: bytes, headers: Mapping[str, str]) -> bytes:
    return delimiter + b"\r\n" + _encode_headers(headers) + b"\r\n"


def multipart_content_type(part_type: str, boundary: str, **params: str) -> str:
    """Return the Content-Type of a multipart/related body (RFC 2387 §3, PS3.18 §8.6.1.2).

    Underscores in extra parameter names become hyphens: ``transfer_syntax`` → ``transfer-syntax``.
    """
    fields = {"type": part_type, "boundary": boundary}
    fields.update((name.replace("_", "-"), value) for name, value in params.items())
    return "; ".join(
        ["multipart/related", *(f"{name}={_param_value(value)}" for name, value in fields.items())]
    )


def _param_value(value: str) -> str:
    """Return value as a token, or as a quoted-string when it is not one (RFC 9110 §5.6.6)."""
    if _TOKEN.fullmatch(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _encode_headers(headers: Mapping[str, str]) -> bytes:
    """Encode part headers as ASCII lines, refusing anything that could break the framing."""
    lines = []
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or "\r" in value or "\n" in value:
            raise ValueError(f"invalid part header {name!r}: {value!r}")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("ascii")
