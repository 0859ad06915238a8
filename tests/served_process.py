"""`pacs serve` as a subprocess on a free loopback port, as an operator starts it; a replica
of several that a test kills and starts again."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    """A running `pacs serve`: its base URL, and its output once it has stopped."""

    base: str
    process: subprocess.Popen[str]
    output: str = field(default="")


@contextlib.contextmanager
def served(*args: str, port: int | None = None, env: dict[str, str] | None = None,
           probe: str = "/healthz") -> Iterator[Served]:
    """`pacs serve ARGS --port FREE`, or on `port` set by the caller's ARGS, file or
    environment; yields once `probe` answers 200; terminates it after, keeping its output."""
    command = [sys.executable, "-m", "pacs", "serve", *args]
    if port is None:
        port = free_port()
        command += ["--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, **(env or {})})
    server = Served(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(server.base + probe, timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"pacs serve did not start:\n{process.communicate()[0]}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        server.output = process.communicate(timeout=30)[0]


@dataclass
class Replica:
    """One `pacs serve` (a single worker) with its own data directory for staging."""

    number: int
    port: int
    args: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str) -> None:
        assert self.log is not None
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pacs", "serve", "--port", str(self.port), *self.args,
                 *extra], stdout=log, stderr=subprocess.STDOUT, env=self.env,
                start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"replica {self.number} did not start"
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the replica's whole process group, as a lost machine."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@contextlib.contextmanager
def running(replicas: list[Replica]) -> Iterator[list[Replica]]:
    """Start each replica in turn; kill them all at the end, however it ends."""
    try:
        for replica in replicas:
            replica.start()
        yield replicas
    finally:
        for replica in replicas:
            replica.kill()
