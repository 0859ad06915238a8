"""The pixel work queue (pacs/pixels/engine.py): at most `workers` jobs run at once, the
others wait, and `pacs_pixel_jobs` counts both for /metrics."""

import threading
from pathlib import Path

import anyio
from prometheus_client import REGISTRY

from pacs.pixels.engine import PixelEngine
from storage.filesystem_blobs import FilesystemBlobStore


def jobs(state: str) -> float:
    return REGISTRY.get_sample_value("pacs_pixel_jobs", {"state": state}) or 0.0


async def test_jobs_beyond_the_workers_wait_and_are_counted(tmp_path: Path) -> None:
    engine = PixelEngine(FilesystemBlobStore(tmp_path), workers=1, cache_bytes=0,
                         memory_bytes=1024, max_rendered_pixels=1024)
    release = threading.Event()
    started: list[int] = []

    def job(number: int) -> int:
        started.append(number)
        release.wait(timeout=30)
        return number

    results: list[int] = []

    async def submit(number: int) -> None:
        results.append(await engine.run(job, number))

    async with anyio.create_task_group() as tasks:
        for number in range(3):
            tasks.start_soon(submit, number)
        with anyio.fail_after(30):
            while (jobs("running"), jobs("waiting")) != (1, 2):
                await anyio.sleep(0.01)
        assert len(started) == 1  # one worker: the other two are queued, not running
        release.set()
    assert sorted(results) == [0, 1, 2]
    assert (jobs("running"), jobs("waiting")) == (0, 0)
