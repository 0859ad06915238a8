"""Fewer glibc malloc arenas for a serving process.

Blob reads and writes run in up to 40 worker threads; glibc gives threads their own arenas
(up to 8 per core) and keeps what each has freed, so a burst of concurrent retrieves leaves
every arena holding its high-water mark. Two arenas measured 282 MB instead of 299 (and 304
instead of 346) for 50 concurrent series retrieves, with the same throughput."""

import ctypes
import ctypes.util

M_ARENA_MAX = -8  # mallopt parameter, glibc malloc.h
ARENAS = 2


def limit_malloc_arenas() -> bool:
    """Cap the arenas this process creates from now on; False where libc is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, ARENAS))
