"""A disposable PostgreSQL for the tests: one cluster per test session, started on first use
in a temporary directory on a free loopback port, and stopped when the session ends (as
../shared/tools/scale/start_pg.sh does for CI). Throwaway settings: trust authentication,
no fsync. Each test gets its own schema of one database (`index_dsn`).

Without PostgreSQL's server binaries the tests that need it skip, or fail when
PACS_REQUIRE_POSTGRES is set (CI)."""

import asyncio
import atexit
import hashlib
import importlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

from storage.protocols import InstanceIndex
from tests.served_process import free_port

DATABASE = "pacs"


@dataclass
class PostgresServer:
    """A cluster in `directory`, run by `bin_dir`'s binaries, listening on `port`."""

    bin_dir: Path
    directory: Path
    port: int
    durable: bool = False  # fsync and synchronous commits, for figures worth comparing

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> None:
        """initdb, start and create the database; as the `postgres` user when run as root
        (the server refuses root)."""
        data, log = self.directory / "data", self.directory / "server.log"
        if os.getuid() == 0:
            shutil.chown(self.directory, "postgres")
        self._run("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")
        settings = ("-c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
                    "-c max_connections=300")
        if not self.durable:
            settings += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "30",
                  "-o", f"-p {self.port} {settings}", "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  DATABASE)

    def stop(self) -> None:
        """Stop the server at once and remove its directory."""
        data = self.directory / "data"
        if (data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if os.getuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False,
                              cwd=self.directory)
        if done.returncode:
            raise RuntimeError(f"{program} failed: {done.stderr or done.stdout}")


def binaries() -> Path | None:
    """The newest installed PostgreSQL's server binaries (Debian keeps them off PATH)."""
    found = [Path(p) for p in glob("/usr/lib/postgresql/*/bin") if Path(p, "initdb").exists()]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if found:
        return found[-1]
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def start_server(durable: bool = False) -> PostgresServer:
    """A new running cluster (the caller stops it); skips, or fails under
    PACS_REQUIRE_POSTGRES, when PostgreSQL is not installed."""
    bin_dir = binaries()
    if bin_dir is None:
        missing("no PostgreSQL server binaries (apt-get install postgresql)")
    if importlib.util.find_spec("asyncpg") is None:
        missing("no asyncpg (pip install '.[scale]')")
    server = PostgresServer(bin_dir, Path(tempfile.mkdtemp(prefix="pacs-pg-")), free_port(),
                            durable)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


def missing(reason: str) -> NoReturn:
    """Skip the test, or fail it under PACS_REQUIRE_POSTGRES (CI), for what is not here."""
    if os.environ.get("PACS_REQUIRE_POSTGRES"):
        pytest.fail(reason)
    pytest.skip(reason, allow_module_level=True)


def asyncpg_or_skip() -> ModuleType:
    """asyncpg, for a test module of the PostgreSQL index; else the module skips (fails
    under PACS_REQUIRE_POSTGRES)."""
    if importlib.util.find_spec("asyncpg") is None:
        missing("no asyncpg (pip install '.[scale]')")
    return importlib.import_module("asyncpg")


_session: list[PostgresServer] = []
_session_lock = threading.Lock()


def session_server() -> PostgresServer:
    """The session's cluster, started on first use and stopped at exit."""
    with _session_lock:
        if not _session:
            _session.append(start_server())
            atexit.register(_session[0].stop)
        return _session[0]


def index_dsn(path: Path, server: PostgresServer | None = None) -> str:
    """A DSN of `server` (the session's cluster if None) whose tables live in a schema of
    `path`'s own (the same path, the same schema: a second process over the same index)."""
    server = server or session_server()
    schema = "t" + hashlib.sha256(str(path).encode()).hexdigest()[:20]
    _in_thread(_create_schema(server.dsn, schema))  # factories are called inside a loop
    return f"{server.dsn}?search_path={schema}"


async def _create_schema(dsn: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    finally:
        await conn.close()


def _in_thread(coroutine: Coroutine[None, None, None]) -> None:
    """Run `coroutine` to its end on a loop of its own, beside the caller's."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(coroutine)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller
            errors.append(exc)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def postgres_index(path: Path) -> InstanceIndex:
    """The contract suite's factory: a PostgresIndex over `path`'s schema (imported here:
    asyncpg may be missing, and then only these tests skip)."""
    dsn = index_dsn(path)
    from storage.postgres.postgres_index import PostgresIndex

    return PostgresIndex(dsn, readers=2, writers=4, read_time_limit=10.0)
