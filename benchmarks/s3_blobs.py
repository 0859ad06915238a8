"""Ranged reads and big commits of the S3 blob store against a disposable SeaweedFS on this
machine, beside the filesystem store: `python -m benchmarks.s3_blobs [READ_MB COMMIT_MB]`
(defaults 100 and 1000; sizes in 10^6 bytes)."""

import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from storage.filesystem_blobs import FilesystemBlobStore
from storage.protocols import BlobStore
from tests.storage import s3_server

READS, READ_BYTES, THREADS = 1000, 64 * 1024, 8


def committed(blobs: BlobStore, size: int) -> tuple[str, float]:
    """A blob of `size` random bytes (staged a MiB at a time) and how long its commit took."""
    staged, piece = blobs.stage(), os.urandom(2**20)
    for offset in range(0, size, len(piece)):
        staged.write(piece[:size - offset])
    staged.close()
    started = time.perf_counter()
    name = blobs.commit(staged)
    return name, time.perf_counter() - started


def reads(blobs: BlobStore, name: str, size: int, threads: int) -> str:
    """READS reads of READ_BYTES at random offsets: latency percentiles and throughput."""
    offsets = [random.randrange(size - READ_BYTES) for _ in range(READS)]

    def timed(offset: int) -> float:
        started = time.perf_counter()
        assert len(blobs.read(name, offset, READ_BYTES)) == READ_BYTES
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        took = sorted(pool.map(timed, offsets))
    wall = time.perf_counter() - started
    ms: Callable[[float], str] = lambda q: f"{took[int(q * (READS - 1))] * 1000:.2f}"  # noqa: E731
    return (f"{threads} thread(s): p50 {ms(0.5)} p95 {ms(0.95)} p99 {ms(0.99)} ms, "
            f"mean {statistics.mean(took) * 1000:.2f} ms, {READS / wall:.0f} reads/s, "
            f"{READS * READ_BYTES / wall / 1e6:.0f} MB/s")


def main(read_mb: int = 100, commit_mb: int = 1000) -> None:
    with tempfile.TemporaryDirectory() as temp:
        stores: dict[str, BlobStore] = {
            "filesystem": FilesystemBlobStore(Path(temp) / "fs"),
            "s3": s3_server.shared().blob_store("bench", Path(temp) / "s3-staging")}
        for kind, blobs in stores.items():
            name, seconds = committed(blobs, read_mb * 10**6)
            print(f"{kind}: commit of {read_mb} MB: {seconds:.2f} s")
            for threads in (1, THREADS):
                print(f"{kind}: {READS} reads of {READ_BYTES // 1024} KiB at random offsets of "
                      f"{read_mb} MB, {reads(blobs, name, read_mb * 10**6, threads)}")
            blobs.delete(name)
            name, seconds = committed(blobs, commit_mb * 10**6)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            print(f"{kind}: commit of {commit_mb} MB: {seconds:.2f} s, "
                  f"{commit_mb / seconds:.0f} MB/s; peak RSS of the process so far {peak} MiB")
            blobs.delete(name)


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:3]))
