"""SQLite connections: one writer thread, a pool of read-only reader threads (WAL mode)."""

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
_PROGRESS_STEPS = 10_000


class QueryTimeout(RuntimeError):
    """A read ran past the configured time limit and was interrupted."""


class Connections:
    """Runs whole transactions as one function on the writer thread; reads on reader threads."""

    def __init__(self, path: Path, readers: int, read_time_limit: float) -> None:
        self._path = path
        self._time_limit = read_time_limit
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="index-writer")
        self._reader_pool = ThreadPoolExecutor(readers, thread_name_prefix="index-reader")
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer = self._writer_pool.submit(self._open_writer).result()

    def _open_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        add_functions(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"{self._path.resolve().as_uri()}?mode=ro", uri=True,
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
        """Run `fn(conn)` on the single writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer_pool, fn, self._writer)

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
        self._writer_pool.submit(self._writer.close).result()
        self._writer_pool.shutdown(wait=True)


def casefold(text: str | None) -> str | None:
    """Unicode case folding (SQLite's NOCASE and LIKE fold ASCII only)."""
    return None if text is None else text.casefold()


def add_functions(conn: sqlite3.Connection) -> None:
    """The SQL functions queries and migrations use."""
    conn.create_function("casefold", 1, casefold, deterministic=True)


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
