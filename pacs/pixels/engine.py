"""Pixel work for requests: a bounded pool of worker threads, so a slow transcode never
stalls searches, a budget of the working memory jobs hold at once, and caches of parsed
headers and of encoded results."""

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

import anyio
from pydicom.dataset import Dataset

from pacs.bounded_cache import BoundedCache
from pacs.dicom.ingest import is_io_error
from pacs.dicom.pixel_data import PIXEL_ELEMENTS
from pacs.pixels.codecs import Encoded, codec_for
from pacs.pixels.description import PixelDescription, PixelError, describe
from pacs.pixels.memory import MemoryBudget
from pacs.pixels.render import (
    RenderParams,
    display_image,
    encode_image,
    fit_viewport,
    frame_header,
    render_need,
)
from pacs.pixels.source import read_frame, read_header, read_instance
from pacs.pixels.transcode import frame_need, instance_need, transcode_frame, transcode_instance
from pacs.telemetry import PIXEL_JOBS
from storage.protocols import BlobStore
from storage.rows import InstanceLocation

T = TypeVar("T")
log = logging.getLogger("pacs")
HEADERS_KEPT = 4096


class PixelEngine:
    """Decodes, encodes and renders frames of stored instances off the event loop; jobs
    hold their estimated working memory of `memory_bytes`, and a rendered picture has at
    most `max_rendered_pixels` pixels, as has each frame decoded for it."""

    def __init__(self, blobs: BlobStore, workers: int, cache_bytes: int, memory_bytes: int,
                 max_rendered_pixels: int) -> None:
        self._blobs = blobs
        self._limiter = anyio.CapacityLimiter(workers)  # jobs at once
        self._threads = anyio.CapacityLimiter(workers)  # their threads: never waited for
        self._memory = MemoryBudget(memory_bytes)
        self._max_rendered_pixels = max_rendered_pixels
        self._depth = workers
        self._frames: BoundedCache[Encoded] = BoundedCache(cache_bytes // 2, "frames")
        self._pictures: BoundedCache[bytes] = BoundedCache(cache_bytes // 2, "pictures")
        self._headers: BoundedCache[tuple[Dataset, PixelDescription | None]] = \
            BoundedCache(HEADERS_KEPT, "pixel headers")

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """`work(*args)` in a pixel worker thread; at most `workers` run at once, the others
        wait (counted as the pixel work queue)."""
        with PIXEL_JOBS.labels("waiting").track_inprogress():
            await self._limiter.acquire()
        try:
            with PIXEL_JOBS.labels("running").track_inprogress():
                return await anyio.to_thread.run_sync(_guarded, work, *args,
                                                      limiter=self._threads)
        finally:
            self._limiter.release()

    async def _within(self, need: int, work: Callable[..., T], *args: object) -> T:
        """`run(work, *args)` once `need` bytes of the memory budget are free."""
        async with self._memory.hold(need):
            return await self.run(work, *args)

    async def description(self, item: InstanceLocation) -> PixelDescription | None:
        """The instance's pixel description; None when it has no pixel data."""
        known = self._headers.get(item.blob_name)
        return (known if known is not None else await self.run(self._header, item))[1]

    async def _described(self, item: InstanceLocation) -> PixelDescription:
        desc = await self.description(item)
        if desc is None:
            raise PixelError(f"instance {item.sop_uid} has no pixel data")
        return desc

    async def frame(self, item: InstanceLocation, number: int, target: str) -> Encoded:
        """Frame `number` of `item` encoded in transfer syntax `target`."""
        key = ("frame", item.blob_name, number, target)
        encoded = self._frames.get(key)
        if encoded is None:
            need = frame_need(await self._described(item))
            encoded = await self._within(need, self._transcode_frame, item, number, target)
            self._frames.put(key, encoded, len(encoded.data))
        return encoded

    async def instance(self, item: InstanceLocation, target: str) -> bytes:
        """The whole instance as Part 10 in `target` (not cached: instances can be big)."""
        need = instance_need(await self.description(item), item.blob_size)
        return await self._within(need, lambda: transcode_instance(
            read_instance(self._blobs, item), target))

    def ahead(self, jobs: Sequence[tuple[InstanceLocation, str]]) -> "Lookahead":
        """Whole-instance transcodes of `jobs` (instance, syntax), each started while the one
        before it is being sent, so a series keeps every pixel worker busy."""
        return Lookahead(self, jobs, self._depth)

    async def rendered(self, item: InstanceLocation, numbers: Sequence[int],
                       params: RenderParams) -> bytes:
        """Frames `numbers` of `item` as one picture (an animation for several GIF frames)."""
        key = ("rendered", item.blob_name, tuple(numbers), params)
        picture = self._pictures.get(key)
        if picture is None:
            need = render_need(await self._described(item), len(numbers), params.viewport,
                               self._max_rendered_pixels)
            picture = await self._within(need, self._render, item, numbers, params)
            self._pictures.put(key, picture, len(picture))
        return picture

    def _header(self, item: InstanceLocation) -> tuple[Dataset, PixelDescription | None]:
        known = self._headers.get(item.blob_name)
        if known is not None:
            return known
        ds, pixel_vr = read_header(self._blobs, item)
        pixel_key = next((e.key for e in PIXEL_ELEMENTS if e.key in item.bulk), None)
        desc = describe(ds, pixel_key, pixel_vr) if "BitsAllocated" in ds and "Rows" in ds \
            else None
        self._headers.put(item.blob_name, (ds, desc), 1)
        return ds, desc

    def _pixels(self, item: InstanceLocation) -> tuple[Dataset, PixelDescription]:
        ds, desc = self._header(item)
        if desc is None:
            raise PixelError(f"instance {item.sop_uid} has no pixel data")
        return ds, desc

    def _transcode_frame(self, item: InstanceLocation, number: int, target: str) -> Encoded:
        _, desc = self._pixels(item)
        data = read_frame(self._blobs, item, number)
        return transcode_frame(data, item.transfer_syntax_uid, target, desc)

    def _render(self, item: InstanceLocation, numbers: Sequence[int],
                params: RenderParams) -> bytes:
        ds, desc = self._pixels(item)
        decoder = codec_for(item.transfer_syntax_uid).decode
        images = [fit_viewport(display_image(decoder(read_frame(self._blobs, item, n), desc),
                                             frame_header(ds, n), desc, params.window),
                               params.viewport)
                  for n in numbers]
        return encode_image(images, params)


def _guarded(work: Callable[..., T], *args: object) -> T:
    """`work(*args)`, whatever pydicom and the codecs raise on stored pixel data they cannot
    make sense of (a header that lies, a corrupt stream; a Rust codec panics with a
    BaseException) turned into a PixelError that says so; the blob store's own errors
    (`is_io_error`) pass as they are."""
    try:
        return work(*args)
    except (PixelError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        if is_io_error(exc):
            raise
        log.warning("stored pixel data could not be processed", exc_info=exc)
        raise PixelError(f"the stored pixel data cannot be processed: {type(exc).__name__}: "
                         f"{str(exc)[:200]}") from exc


class Lookahead:
    """Instances transcoded up to `depth` ahead of the one asked for; results are held only
    until taken. Transcodes left running when a client goes away finish and are dropped."""

    def __init__(self, engine: PixelEngine, jobs: Sequence[tuple[InstanceLocation, str]],
                 depth: int) -> None:
        self._engine = engine
        self._jobs = jobs
        self._depth = depth
        self._started: dict[int, asyncio.Task[bytes]] = {}

    async def take(self, index: int) -> bytes:
        """Instance `index` of the jobs, transcoded; later ones are started meanwhile."""
        for ahead in range(index, min(index + self._depth, len(self._jobs))):
            if ahead not in self._started:
                task = asyncio.ensure_future(self._engine.instance(*self._jobs[ahead]))
                task.add_done_callback(_retrieved)
                self._started[ahead] = task
        return await self._started.pop(index)


def _retrieved(task: "asyncio.Task[bytes]") -> None:
    """Mark an abandoned transcode's failure as seen (it is reported to whoever awaits it)."""
    if not task.cancelled():
        task.exception()
