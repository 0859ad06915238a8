"""Streaming ``multipart/related`` parser that does no I/O (RFC 2046 §5.1, RFC 2387).

Used for Store request bodies (DICOM PS3.18 §8.6.1.2). python-multipart's ``MultipartParser``
does the delimiter search; this module adds what it lacks: skipping a preamble (it accepts only
CR/LF before the first delimiter), a limit on the total size of each part's headers (its own
limits are per header line and per header count), and a truncation check (its ``finalize()`` is
a no-op).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState

DEFAULT_MAX_HEADER_BYTES = 16 * 1024
DEFAULT_MAX_PREAMBLE_BYTES = 64 * 1024

# RFC 2046 §5.1.1: boundary := 0*69<bchars> bcharsnospace
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
# After "--boundary": "--" closes the body; otherwise transport padding, then CRLF.
_DELIMITER_END = re.compile(rb"--|[ \t]*\r\n")
# What may still grow into a _DELIMITER_END once more bytes arrive.
_DELIMITER_END_PENDING = re.compile(rb"-|[ \t]*\r?")
# Bytes counted per header line besides its name and value: ":", one space and CRLF.
_HEADER_LINE_OVERHEAD = 4


class MultipartError(ValueError):
    """Malformed multipart framing (answer 400)."""


@dataclass(frozen=True)
class PartStart:
    """A part begins; header names are lower-cased and values stripped."""

    headers: Mapping[str, str]


@dataclass(frozen=True)
class PartData:
    """The next bytes of the current part's body."""

    data: bytes


@dataclass(frozen=True)
class PartEnd:
    """The current part's body is complete."""


Event = PartStart | PartData | PartEnd


class MultipartReader:
    """Turn body chunks into PartStart, PartData*, PartEnd events per part (RFC 2046 §5.1.1).

    The preamble and epilogue are ignored. After a MultipartError the reader must be discarded.
    """

    def __init__(
        self,
        boundary: str,
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_preamble_bytes: int = DEFAULT_MAX_PREAMBLE_BYTES,
    ) -> None:
        if not _BOUNDARY.fullmatch(boundary):
            raise MultipartError(f"invalid multipart boundary {boundary!r} (RFC 2046 §5.1.1)")
        self._boundary = boundary.encode("ascii")
        self._max_header_bytes = max_header_bytes
        self._max_preamble_bytes = max_preamble_bytes
        # A leading CRLF lets a body that starts with "--boundary" match like any other line.
        self._preamble: bytearray | None = bytearray(b"\r\n")
        self._preamble_bytes = 0
        self._events: list[Event] = []
        self._error: MultipartError | None = None  # raised once the events before it are out
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._name = bytearray()
        self._value = bytearray()
        self._parts_seen = 0
        self._parser = MultipartParser(
            self._boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_begin": self._on_header_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
            },
            # Our total-size budget bounds both; theirs must never be the tighter limit.
            max_header_count=max_header_bytes,
            max_header_size=max_header_bytes,
        )

    @property
    def parts_seen(self) -> int:
        """Number of parts whose headers have been read."""
        return self._parts_seen

    def feed(self, chunk: bytes) -> list[Event]:
        """Parse the next chunk of the body and return the events it completes. Events
        completed before a malformation are returned first; the MultipartError follows at
        the next call (`feed` or `close`), so how the body was cut into chunks never
        changes which parts are complete."""
        if self._error is not None:
            raise self._error
        try:
            if self._preamble is None:
                self._parser.write(chunk)
            else:
                self._skip_preamble(self._preamble, chunk)
        except FormParserError as exc:
            self._error = MultipartError(f"malformed multipart body: {exc}")
            self._error.__cause__ = exc
        except MultipartError as exc:
            self._error = exc
        events, self._events = self._events, []
        if self._error is not None and not events:
            raise self._error
        return events

    def close(self) -> None:
        """Check that the body ended with the close delimiter "--boundary--"."""
        if self._error is not None:
            raise self._error
        if self._preamble is not None:
            raise MultipartError("no multipart boundary found in the body")
        if self._parser.state != MultipartState.END:
            raise MultipartError("multipart body ended before the closing boundary")

    def _skip_preamble(self, preamble: bytearray, chunk: bytes) -> None:
        """Drop bytes before the first delimiter line, then hand the rest to the parser."""
        preamble += chunk
        delimiter = b"\r\n--" + self._boundary
        position = preamble.find(delimiter)
        while position != -1:
            after = position + len(delimiter)
            end = _DELIMITER_END.match(preamble, after)
            if end is not None:
                self._preamble = None
                if end.group() == b"--":
                    self._parser.write(b"--" + self._boundary + b"--")
                else:
                    self._parser.write(b"--" + self._boundary + b"\r\n")
                    self._parser.write(bytes(preamble[end.end() :]))
                return
            if _DELIMITER_END_PENDING.fullmatch(preamble, after):
                break
            position = preamble.find(delimiter, position + 1)
        self._preamble_bytes += len(chunk)
        if self._preamble_bytes > self._max_preamble_bytes:
            raise MultipartError(
                f"no multipart boundary in the first {self._max_preamble_bytes} bytes"
            )
        keep_from = position if position != -1 else len(preamble) - len(delimiter) + 1
        del preamble[: max(keep_from, 0)]

    def _count_header_bytes(self, count: int) -> None:
        self._header_bytes += count
        if self._header_bytes > self._max_header_bytes:
            raise MultipartError(f"part headers exceed {self._max_header_bytes} bytes")

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._header_bytes = 0

    def _on_header_begin(self) -> None:
        self._name.clear()
        self._value.clear()
        self._count_header_bytes(_HEADER_LINE_OVERHEAD)

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header_bytes(end - start)
        self._name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header_bytes(end - start)
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        name = self._name.decode("latin-1").lower()
        value = self._value.decode("latin-1").strip()
        # Repeated fields combine as a comma-separated list (RFC 9110 §5.3).
        previous = self._headers.get(name)
        self._headers[name] = value if previous is None else f"{previous}, {value}"

    def _on_headers_finished(self) -> None:
        self._parts_seen += 1
        self._events.append(PartStart(MappingProxyType(self._headers)))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._events.append(PartData(bytes(data[start:end])))

    def _on_part_end(self) -> None:
        self._events.append(PartEnd())
