"""Bytes that arrive in pieces (a request body part) written to a staged blob in large
buffered writes, each in a worker thread, within a size limit."""

from collections.abc import Iterable

import anyio

from pacs.service.errors import TooLarge
from storage.protocols import BlobStore, StagedBlob


class StagingWriter:
    """Holds the chunks `add` is given and writes them to a staged blob (created on the
    first write) once `batch` bytes are held, without copying them; `finish` hands over the
    complete blob."""

    def __init__(self, blobs: BlobStore, batch: int, limit: int, what: str) -> None:
        self._blobs = blobs
        self._batch = batch
        self._limit = limit
        self._what = what
        self._chunks: list[bytes] = []
        self._held = 0
        self._staged: StagedBlob | None = None

    async def add(self, data: bytes) -> None:
        """Take the next bytes; TooLarge past the limit."""
        self._chunks.append(data)
        self._held += len(data)
        if self._held >= self._batch:
            await self._flush(last=False)

    async def finish(self) -> StagedBlob:
        """The complete staged blob (possibly empty), now the caller's to commit or discard."""
        await self._flush(last=True)
        staged, self._staged = self._staged, None
        assert staged is not None
        return staged

    async def discard(self) -> None:
        """Drop the bytes staged so far (safe to call at any time, and more than once)."""
        self._chunks, self._held = [], 0
        staged, self._staged = self._staged, None
        if staged is not None:
            await anyio.to_thread.run_sync(staged.discard)

    async def _flush(self, last: bool) -> None:
        chunks, held = self._chunks, self._held
        self._chunks, self._held = [], 0
        size = self._staged.size if self._staged is not None else 0
        if size + held > self._limit:
            raise TooLarge(f"{self._what} is larger than the limit of {self._limit} bytes")
        self._staged = await anyio.to_thread.run_sync(_write, self._blobs, self._staged, chunks,
                                                      last)


def _write(blobs: BlobStore, staged: StagedBlob | None, chunks: list[bytes], last: bool
           ) -> StagedBlob:
    staged = staged or blobs.stage()
    try:
        for chunk in chunks:
            staged.write(chunk)
        if last:
            staged.close()
    except BaseException:  # a full disk: nothing of the part is kept
        staged.discard()
        raise
    return staged


def stage_all(blobs: BlobStore, chunks: Iterable[bytes]) -> StagedBlob:
    """A closed staged blob holding `chunks` in order; nothing is left behind if writing (or
    producing a chunk) fails."""
    staged = blobs.stage()
    try:
        for chunk in chunks:
            staged.write(chunk)
        staged.close()
    except BaseException:
        staged.discard()
        raise
    return staged
