"""SQLite connections: one writer thread, a pool of read-only reader threads (WAL mode).

Commits are durable (`synchronous=FULL`: the WAL is fsync'd at each commit). Small writes
that arrive together share one transaction and so one fsync (group commit, as databases do).

Processes sharing the index (workers, `pacs import`) take turns at writing through a lock
file: SQLite's own busy handler polls with sleeps, so a process that writes back to back can
starve another past any timeout ("database is locked" after a million stores from two
loaders); a process waiting on the lock file is woken the moment it is released, and the
writer leaves a short gap before taking it again.
"""

import asyncio
import errno
import fcntl
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from storage.protocols import QueryTimeout

T = TypeVar("T")
_PROGRESS_STEPS = 10_000
GROUP_MAX = 256  # grouped writes in one transaction at most
TURN_GAP_S = 0.0005  # after a write, before the next: a waiting process gets its turn
BUSY_TIMEOUT_MS = 60_000


@dataclass
class _Grouped:
    """A write waiting for the next group commit, and where its result goes."""

    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


# SQLite's primary result codes for a file that cannot be written, as the OSError the
# InstanceIndex Protocol promises (https://sqlite.org/rescode.html).
_UNWRITABLE = {13: (errno.ENOSPC, "the index's disk is full"),  # SQLITE_FULL
               8: (errno.EROFS, "the index is read-only"),  # SQLITE_READONLY
               10: (errno.EIO, "the index's disk failed to read or write"),  # SQLITE_IOERR
               14: (errno.EACCES, "the index's files cannot be opened")}  # SQLITE_CANTOPEN


def as_os_error(exc: BaseException) -> BaseException:
    """`exc`, or the OSError it means when SQLite could not write its files."""
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.Error) or code is None or code & 0xFF not in _UNWRITABLE:
        return exc
    number, message = _UNWRITABLE[code & 0xFF]
    error = OSError(number, f"{message} ({exc})")
    error.__cause__ = exc  # set here: the grouped writes hand it over without a raise
    return error


class Connections:
    """Runs whole transactions as one function on the writer thread; reads on reader threads."""

    def __init__(self, path: Path, readers: int, read_time_limit: float,
                 read_only: bool = False) -> None:
        self._path = path
        self._read_only = read_only
        self._time_limit = read_time_limit
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="index-writer")
        self._reader_pool = ThreadPoolExecutor(readers, thread_name_prefix="index-reader")
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._waiting: list[_Grouped] = []
        self._waiting_lock = threading.Lock()
        if read_only:  # on a read-only volume: no writer, and nothing can change the file
            return
        self._turns = open(path.with_name(path.name + ".writer"), "a")  # closed by close()
        self._writer = self._writer_pool.submit(self._open_writer).result()

    def _open_writer(self) -> sqlite3.Connection:
        with self._turn():  # turning a new file to WAL needs it to itself
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False,
                                   timeout=BUSY_TIMEOUT_MS / 1000)
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        add_functions(conn)
        return conn

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """This process's turn at writing (on the writer thread)."""
        fcntl.flock(self._turns, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._turns, fcntl.LOCK_UN)
            time.sleep(TURN_GAP_S)

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            mode = "immutable=1" if self._read_only else "mode=ro"
            conn = sqlite3.connect(f"{self._path.resolve().as_uri()}?{mode}", uri=True,
                                   isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=10000")
            add_functions(conn)
            conn.set_progress_handler(self._over_time, _PROGRESS_STEPS)
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    def _over_time(self) -> int:
        return int(time.monotonic() > self._local.deadline)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` on the single writer thread, in this process's turn."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer_pool, self._run_write, fn)

    def _run_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._read_only:
            raise OSError(errno.EROFS, "the index is read-only")
        with self._turn():
            try:
                return fn(self._writer)
            except sqlite3.Error as exc:
                error = as_os_error(exc)
                if error is exc:
                    raise
                raise error from exc

    async def write_grouped(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` on the writer thread in a transaction shared with the other grouped
        writes waiting then, inside its own savepoint: an exception undoes only its changes
        (and is raised here), and every change is durable with the group's one commit."""
        if self._read_only:
            raise OSError(errno.EROFS, "the index is read-only")
        loop = asyncio.get_running_loop()
        item = _Grouped(fn, loop.create_future(), loop)
        with self._waiting_lock:
            self._waiting.append(item)
            leader = len(self._waiting) == 1
        if leader:  # otherwise a commit is already queued and will take this write too
            loop.run_in_executor(self._writer_pool, self._commit_group)
        result: T = await item.future
        return result

    def _commit_group(self) -> None:
        with self._waiting_lock:
            group, self._waiting = self._waiting[:GROUP_MAX], self._waiting[GROUP_MAX:]
            if self._waiting:
                self._writer_pool.submit(self._commit_group)
        with self._turn():
            outcomes = run_group(self._writer, [item.fn for item in group])
        for item, outcome in zip(group, outcomes, strict=True):
            item.loop.call_soon_threadsafe(_settle, item.future, outcome)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` on a read-only connection, interrupted after the time limit."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader_pool, self._run_read, fn)

    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._reader()
        self._local.deadline = time.monotonic() + self._time_limit
        try:
            return fn(conn)
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise QueryTimeout(f"query ran longer than {self._time_limit:g} s") from exc
            raise

    def close(self) -> None:
        """Close every connection and stop the threads."""
        self._reader_pool.shutdown(wait=True)
        with self._lock:
            for conn in self._readers:
                conn.close()
        if not self._read_only:
            self._writer_pool.submit(self._writer.close).result()
            self._turns.close()
        self._writer_pool.shutdown(wait=True)


def casefold(text: str | None) -> str | None:
    """Unicode case folding (SQLite's NOCASE and LIKE fold ASCII only)."""
    return None if text is None else text.casefold()


def add_functions(conn: sqlite3.Connection) -> None:
    """The SQL functions queries and migrations use."""
    conn.create_function("casefold", 1, casefold, deterministic=True)


def run_group(conn: sqlite3.Connection, fns: list[Callable[[sqlite3.Connection], Any]]
              ) -> list[tuple[bool, Any]]:
    """Each of `fns` in its own savepoint of one transaction; per function, (True, its
    result) or (False, the exception it raised; every one's, if the transaction fails)."""
    outcomes: list[tuple[bool, Any]] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        for fn in fns:
            conn.execute("SAVEPOINT grouped")
            try:
                outcomes.append((True, fn(conn)))
            except Exception as exc:  # noqa: BLE001 - handed to the caller that sent fn
                conn.execute("ROLLBACK TO grouped")
                outcomes.append((False, exc))
            conn.execute("RELEASE grouped")
        conn.execute("COMMIT")
    except Exception as exc:  # noqa: BLE001 - BEGIN or COMMIT failed: nothing was written
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return [(False, exc)] * len(fns)
    return outcomes


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    done, value = outcome
    if future.cancelled():
        return
    if done:
        future.set_result(value)
    else:
        future.set_exception(as_os_error(value))


def transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """`BEGIN IMMEDIATE` … `COMMIT`, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result
