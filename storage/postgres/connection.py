"""PostgreSQL connections: two asyncpg pools, opened on first use and closed by `close`.

Reads run on the readers' pool, whose sessions carry `statement_timeout` (the read time
limit: a read past it is cancelled by the server and raises QueryTimeout, as SQLite's
interrupted reads do); writes run on the writers' pool, unlimited as SQLite's are but for
waiting on a lock (as long as SQLite waits on its busy handler), each in one transaction
that is run again when the server chose it to break a deadlock.

An unreachable or failing server is reported as the OSError the InstanceIndex Protocol
promises (`as_os_error`)."""

import asyncio
import contextlib
import errno
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import asyncpg

from storage.index.connection import BUSY_TIMEOUT_MS
from storage.protocols import QueryTimeout

T = TypeVar("T")
CONNECT_TIMEOUT_S = 10.0
LISTEN_RETRY_S = 1.0  # a listener that lost its connection connects again after this
RETRIES = 5  # runs of a write transaction that keeps losing deadlocks
LOCK_TIMEOUT_MS = BUSY_TIMEOUT_MS  # a write waits for a lock as long as SQLite's does

# SQLSTATE classes and codes that mean the database cannot be reached or written, as OSError
# (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_BY_STATE = {
    "08": (errno.ECONNRESET, "the index's database connection failed"),
    "53100": (errno.ENOSPC, "the index's database's disk is full"),
    "53300": (errno.ECONNREFUSED, "the index's database takes no more connections"),
    "53": (errno.ENOMEM, "the index's database is out of memory or resources"),
    # 57P01 admin shutdown, 57P02 crash shutdown, 57P03 starting up, 57P04 database dropped
    "57P": (errno.ECONNREFUSED, "the index's database is not available"),
    "58": (errno.EIO, "the index's database failed to read or write"),  # system error
    "25006": (errno.EROFS, "the index's database is read-only"),  # a standby
    "42501": (errno.EACCES, "the index's database refuses this user"),
    "28": (errno.EACCES, "the index's database refuses these credentials"),
}


def as_os_error(exc: BaseException) -> BaseException:
    """`exc`, or the OSError it means when the database cannot be reached or written."""
    if isinstance(exc, TimeoutError):  # asyncpg's connect timeout: errno None
        found: tuple[int, str] | None = (errno.ETIMEDOUT, "the index's database did not answer")
    elif isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        found = next((_BY_STATE[p] for p in (state, state[:3], state[:2]) if p in _BY_STATE),
                     None)
    else:
        return exc
    if found is None:
        return exc
    number, message = found
    error = OSError(number, f"{message} ({exc})")
    error.__cause__ = exc
    return error


@contextmanager
def os_errors() -> Iterator[None]:
    """Raise what `as_os_error` makes of an error of the database."""
    try:
        yield
    except (asyncpg.PostgresError, TimeoutError) as exc:
        error = as_os_error(exc)
        if error is exc:
            raise
        raise error from exc


class Pools:
    """The readers' and the writers' pools of one database (`dsn`)."""

    def __init__(self, dsn: str, readers: int, writers: int, read_time_limit: float) -> None:
        self._dsn = dsn
        self._sizes = readers, writers
        self._time_limit = read_time_limit
        self._pools: tuple[asyncpg.Pool, asyncpg.Pool] | None = None
        self._opening = asyncio.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self._listening: asyncio.Task[None] | None = None

    async def _open(self) -> tuple[asyncpg.Pool, asyncpg.Pool]:
        async with self._opening:
            if self._pools is None:
                limit = str(max(1, round(self._time_limit * 1000)))  # ms; 0 = none
                readers = await self._pool(self._sizes[0], {"statement_timeout": limit})
                try:
                    self._pools = readers, await self._pool(
                        self._sizes[1], {"lock_timeout": str(LOCK_TIMEOUT_MS)})
                except BaseException:
                    await readers.close()
                    raise
            return self._pools

    async def _pool(self, size: int, settings: dict[str, str]) -> asyncpg.Pool:
        with os_errors():
            return await asyncpg.create_pool(self._dsn, min_size=1, max_size=size,
                                             timeout=CONNECT_TIMEOUT_S,
                                             server_settings=settings, reset=_kept)

    async def read(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`fn(conn)` on a reader, cancelled by the server after the time limit."""
        readers, _ = self._pools or await self._open()
        try:
            with os_errors():
                async with readers.acquire() as conn:
                    return await fn(conn)
        except asyncpg.QueryCanceledError as exc:
            raise QueryTimeout(f"query ran longer than {self._time_limit:g} s") from exc

    async def write(self, fn: Callable[[asyncpg.Connection], Awaitable[T]], *,
                    transaction: bool = True) -> T:
        """`fn(conn)` on a writer in one transaction (unless `fn` runs a single statement,
        a transaction of its own), run again if it loses a deadlock."""
        _, writers = self._pools or await self._open()
        for _ in range(RETRIES - 1):
            try:
                return await self._write(writers, fn, transaction)
            except asyncpg.DeadlockDetectedError:
                continue
        return await self._write(writers, fn, transaction)

    @staticmethod
    async def _write(pool: asyncpg.Pool, fn: Callable[[asyncpg.Connection], Awaitable[T]],
                     transaction: bool) -> T:
        with os_errors():
            async with pool.acquire() as conn:
                if not transaction:
                    return await fn(conn)
                async with conn.transaction():
                    return await fn(conn)

    async def check(self) -> None:
        """Connect afresh and ask one question (not waiting behind the pools' work); an
        OSError for any refusal."""
        try:
            with os_errors():
                conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_S)
                try:
                    await conn.fetchval("SELECT 1", timeout=CONNECT_TIMEOUT_S)
                finally:
                    await conn.close()
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:  # no such database, …
            raise OSError(errno.EIO, f"the index's database refused: {exc}") from exc

    async def listen(self, channel: str, callback: Callable[[], None]) -> None:
        """Call `callback` at each notification on `channel`, and each time the listener
        (re)connects, since what was notified meanwhile is lost: a connection of its own,
        connected again after LISTEN_RETRY_S whenever it ends, until close()."""
        self._callbacks.append(callback)
        if self._listening is None:
            self._listening = asyncio.create_task(self._listen(channel))

    async def _listen(self, channel: str) -> None:
        while True:
            with contextlib.suppress(OSError, asyncio.TimeoutError, asyncpg.PostgresError,
                                     asyncpg.InterfaceError):
                await self._listen_once(channel)
            await asyncio.sleep(LISTEN_RETRY_S)

    async def _listen_once(self, channel: str) -> None:
        """Listen on one connection until it ends."""
        conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_S)
        ended = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _: ended.set())
            await conn.add_listener(channel, lambda *_: self._notified())
            self._notified()
            await ended.wait()
        finally:
            await conn.close(timeout=CONNECT_TIMEOUT_S)

    def _notified(self) -> None:
        for callback in self._callbacks:
            callback()

    async def close(self) -> None:
        """Close both pools (waiting for the work under way) and the listener."""
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
            self._listening = None
        if self._pools is not None:
            for pool in self._pools:
                await pool.close()
            self._pools = None


async def _kept(conn: asyncpg.Connection) -> None:
    """A connection back in its pool needs no reset query (asyncpg's default costs a round
    trip each time): the index sets no session state, takes advisory locks for a transaction
    only and opens no cursors; asyncpg still rolls back a transaction left open."""
