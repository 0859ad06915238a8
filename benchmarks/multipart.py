"""multipart/related request bodies and a streaming, sans-IO response parser (RFC 2046 §5.1)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

CRLF = b"\r\n"
_PARAM = re.compile(r';\s*(?P<name>[^=;\s]+)\s*=\s*(?:"(?P<quoted>[^"]*)"|(?P<token>[^;\s]*))')


def new_boundary() -> str:
    return f"bench-{secrets.token_hex(16)}"


def encode(parts: Iterable[bytes], boundary: str, part_type: str) -> bytes:
    """Join `parts` into one multipart/related body, each part with only a Content-Type."""
    head = f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode()
    chunks: list[bytes] = []
    for part in parts:
        chunks += [head, part, CRLF]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks)


def content_type(part_type: str, boundary: str) -> str:
    return f'multipart/related; type="{part_type}"; boundary={boundary}'


def media_type_params(value: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type value into its lower-cased media type and its parameters.

    Quoted values may hold `;`: Orthanc sends `type="application/octet-stream; transfer-syntax=.."`.
    """
    media, _, rest = value.partition(";")
    params = {m["name"].lower(): m["quoted"] or m["token"] for m in _PARAM.finditer(";" + rest)}
    return media.strip().lower(), params


@dataclass
class Part:
    """A received part: its headers (lower-cased names), its body size in bytes, and its body
    when the parser keeps bodies."""

    headers: dict[str, str] = field(default_factory=dict)
    size: int = 0
    body: bytearray = field(default_factory=bytearray)


class MultipartError(ValueError):
    """The body is not well-formed multipart."""


class StreamingParser:
    """Feed body chunks; counts part sizes, and keeps part bodies only if `keep_bodies`."""

    def __init__(self, boundary: str, keep_bodies: bool = False) -> None:
        self._delimiter = b"\r\n--" + boundary.encode()
        self._keep = keep_bodies
        self._buffer = bytearray(CRLF)  # lets the first delimiter match like the others
        self._state = "preamble"
        self._current = Part()
        self.parts: list[Part] = []

    @property
    def complete(self) -> bool:
        return self._state == "epilogue"

    def feed(self, chunk: bytes) -> None:
        if self._state == "epilogue":
            return
        self._buffer += chunk
        while self._step():
            pass

    def _step(self) -> bool:
        """Advance one state if the buffer allows; False when more bytes are needed."""
        buf = self._buffer
        if self._state in ("preamble", "body"):
            index = buf.find(self._delimiter)
            if index < 0:
                keep = len(self._delimiter) - 1
                if len(buf) > keep:
                    self._take(len(buf) - keep)
                return False
            self._take(index)
            if self._state == "body":
                self.parts.append(self._current)
            del buf[: len(self._delimiter)]
            self._state = "delimiter"
            return True
        if self._state == "delimiter":
            if len(buf) < 2:
                return False
            if buf[:2] == b"--":
                self._state = "epilogue"
                buf.clear()
                return False
            end = buf.find(CRLF)
            if end < 0:
                return False
            if buf[:end].strip(b" \t"):
                raise MultipartError("garbage after boundary delimiter")
            del buf[: end + 2]
            self._state = "headers"
            return True
        # headers: empty block when the next line is blank
        end = 0 if buf[:2] == CRLF else buf.find(CRLF + CRLF)
        if end < 0:
            return False
        self._current = Part(headers=_parse_headers(bytes(buf[:end])))
        del buf[: end + (2 if end == 0 else 4)]
        self._state = "body"
        return True

    def _take(self, count: int) -> None:
        """Move `count` bytes from the buffer into the current part (preamble: a throwaway)."""
        self._current.size += count
        if self._keep and self._state == "body":
            self._current.body += self._buffer[:count]
        del self._buffer[:count]


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.decode("latin-1").split("\r\n") if block else ():
        name, sep, value = line.partition(":")
        if not sep:
            raise MultipartError(f"bad part header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    return headers
