"""The working memory pixel jobs of one server process may hold at once, lent by estimate:
a job waits until its estimate fits, in the order jobs asked; one larger than the whole
budget waits until it can run alone. Used from the event loop only, so it needs no lock."""

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio


class MemoryBudget:
    """`capacity` bytes, lent first come, first served."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._free = capacity
        self._waiting: deque[tuple[int, anyio.Event]] = deque()

    @asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        """Hold `size` bytes (the whole budget, if more) while the block runs."""
        size = min(size, self._capacity)
        await self._acquire(size)
        try:
            yield
        finally:
            self._release(size)

    async def _acquire(self, size: int) -> None:
        if not self._waiting and size <= self._free:
            self._free -= size
            return
        turn = (size, anyio.Event())
        self._waiting.append(turn)
        try:
            await turn[1].wait()
        except BaseException:  # cancelled: give back the turn, or the bytes if granted
            if turn[1].is_set():
                self._release(size)
            else:
                self._waiting.remove(turn)
                self._grant()
            raise

    def _release(self, size: int) -> None:
        self._free += size
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self._waiting[0][0] <= self._free:
            size, granted = self._waiting.popleft()
            self._free -= size
            granted.set()
