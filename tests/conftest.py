"""Shared fixtures: a real uvicorn on an ephemeral port over a real SQLite file and blob dir."""

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from pacs.app import create_app
from pacs.settings import Settings


@dataclass(frozen=True)
class LiveServer:
    """A running server: its base URL, DICOMweb root and data directory."""

    base: str
    data_dir: Path

    @property
    def dicomweb(self) -> str:
        return f"{self.base}/dicomweb"

    def google(self, name: str = "projects/local/locations/local/datasets/default/"
                                  "dicomStores/default", version: str = "v1") -> str:
        return f"{self.base}/{version}/{name}/dicomWeb"


class ServerThread:
    """uvicorn.Server on a pre-bound loopback socket, run in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on",
                                proxy_headers=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def run_server(data_dir: Path, **overrides: object) -> ServerThread:
    """A server on `data_dir` (enter it with `with`)."""
    return ServerThread(Settings(data_dir=data_dir, **overrides))  # type: ignore[arg-type]


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A fresh archive per test."""
    with run_server(tmp_path / "data") as running:
        yield LiveServer(f"http://127.0.0.1:{running.port}", tmp_path / "data")


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One archive for a whole test module (for suites that build on stored data)."""
    data = tmp_path_factory.mktemp("shared") / "data"
    with run_server(data) as running:
        yield LiveServer(f"http://127.0.0.1:{running.port}", data)
