"""`pacs serve` as a subprocess on a free loopback port, as an operator starts it."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

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
