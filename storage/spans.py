"""Reading many spans of one blob in few reads: spans close together (a frame's fragments
8-byte item headers apart, a viewer's consecutive frames) are read as one range and cut
apart, so an S3 store makes one ranged GET where it would make one per span; and one span
as a file to read from as it is consumed."""

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storage.protocols import BlobStore
from storage.rows import Span

GAP = 64 * 1024  # bytes between two spans read through rather than asked for twice


@dataclass(frozen=True)
class Read:
    """One range to read, and the spans it holds (their indexes in the caller's list)."""

    offset: int
    length: int
    spans: tuple[int, ...]


def plan(spans: Sequence[Span], gap: int = GAP) -> list[Read]:
    """The ranges that cover `spans`, in offset order: spans at most `gap` bytes apart (or
    overlapping) share one."""
    reads: list[Read] = []
    for index in sorted(range(len(spans)), key=lambda i: spans[i].offset):
        span = spans[index]
        last = reads[-1] if reads else None
        if last is not None and span.offset - (last.offset + last.length) <= gap:
            end = max(last.offset + last.length, span.offset + span.length)
            reads[-1] = Read(last.offset, end - last.offset, (*last.spans, index))
        else:
            reads.append(Read(span.offset, span.length, (index,)))
    return reads


def read_spans(blobs: BlobStore, name: str, spans: Sequence[Span],
               gap: int = GAP) -> list[bytes]:
    """The bytes of each span of blob `name`, in the order given, from one read per range of
    `plan` (a span past the blob's end comes back short, as `read` returns it). Blocking."""
    out: list[bytes] = [b""] * len(spans)
    for read in plan(spans, gap):
        data = blobs.read(name, read.offset, read.length)
        for index in read.spans:
            start = spans[index].offset - read.offset
            out[index] = data[start:start + spans[index].length]
    return out


class SpanReader(io.RawIOBase):
    """One span of a blob as a seekable, read-only raw file, read from the store only as it
    is asked for (wrap it in `io.BufferedReader` to read in large pieces)."""

    def __init__(self, blobs: BlobStore, name: str, span: Span) -> None:
        super().__init__()
        self._blobs, self._name, self._span, self._position = blobs, name, span, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position,
                io.SEEK_END: self._span.length}[whence]
        self._position = max(base + offset, 0)
        return self._position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._span.length - self._position)
        if wanted <= 0:
            return 0
        data = self._blobs.read(self._name, self._span.offset + self._position, wanted)
        buffer[:len(data)] = data
        self._position += len(data)
        return len(data)
