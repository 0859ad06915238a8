"""Header parsing off the event loop and off the GIL: a pool of worker processes.

Parsing a header into DICOM JSON is the CPU-heavy part of a Store; in worker processes it runs
on every core instead of contending for one interpreter lock with HTTP handling.
"""

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import anyio

from pacs.pydicom_config import configure_pydicom
from storage.ingest import IngestRecord, read_instance_file


class IngestPool:
    """Parses staged files in `processes` spawned workers (0: in a thread of this process)."""

    def __init__(self, processes: int) -> None:
        self._processes = processes
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor | None:
        if self._processes <= 0:
            return None
        return ProcessPoolExecutor(self._processes, initializer=configure_pydicom,
                                   mp_context=multiprocessing.get_context("spawn"))

    async def parse(self, path: str) -> IngestRecord:
        """The IngestRecord of the Part 10 file at `path`; raises IngestError."""
        executor = self._executor
        if executor is None:
            return await anyio.to_thread.run_sync(read_instance_file, path)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, read_instance_file, path)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): start a fresh pool and try once more.
            if self._executor is executor:
                self._executor = self._new_executor()
                executor.shutdown(wait=False)
            return await loop.run_in_executor(self._executor, read_instance_file, path)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
