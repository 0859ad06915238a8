"""A least-recently-used cache bounded by the sizes of what it holds, shared by threads."""

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

from pacs.telemetry import CACHE_LOOKUPS

V = TypeVar("V")


class BoundedCache(Generic[V]):
    """The least recently used values are dropped once their sizes (bytes, or 1 per entry
    to bound a count) add up to more than `capacity`. Keys must name immutable content (blob
    names are never reused), so entries never go stale."""

    def __init__(self, capacity: int, name: str) -> None:
        self._capacity = capacity
        self._hits = CACHE_LOOKUPS.labels(name, "hit")  # `name` labels its Prometheus counts
        self._misses = CACHE_LOOKUPS.labels(name, "miss")
        self._held = 0
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self._misses.inc()
                return None
            self._hits.inc()
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, value: V, size: int) -> None:
        if size > self._capacity // 8:
            return  # one huge value would evict everything else
        with self._lock:
            old = self._entries.pop(key, None)
            self._held += size - (old[1] if old is not None else 0)
            self._entries[key] = (value, size)
            while self._held > self._capacity:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._held -= dropped
