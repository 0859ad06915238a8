"""Start and stop the servers that `benchmarks.compare` measures: ours and an Orthanc peer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ORTHANC_TOOLS = REPO.parent / "shared" / "tools" / "orthanc"
ORTHANC_PORT = 18042
ORTHANC_DICOMWEB = f"http://127.0.0.1:{ORTHANC_PORT}/dicom-web"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Server:
    """A running server: its DICOMweb base URL and the pid at the root of its process tree."""

    url: str
    pid: int


@contextmanager
def pacs_server(data_dir: Path, log_path: Path, workers: int | None = None,
                extra: tuple[str, ...] = ()) -> Iterator[Server]:
    """Run `python -m pacs serve` on a free loopback port, with `workers` worker processes
    (None: the server's default, one per core) and `extra` options."""
    port = free_port()
    command = [sys.executable, "-m", "pacs", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--data", str(data_dir)]
    command += ["--workers", str(workers)] if workers is not None else []
    command += list(extra)
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", process, log_path)
        yield Server(f"http://127.0.0.1:{port}/dicomweb", process.pid)
    finally:
        stop(process, STOP_TIMEOUT_S)


def stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not ended within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def orthanc_server(home: Path, tools: Path = ORTHANC_TOOLS) -> Iterator[Server]:
    """Start a fresh Orthanc with the shared scripts in `home` (its pid file is
    `home/run/orthanc.pid`)."""
    if listening(ORTHANC_PORT):
        raise RuntimeError(f"port {ORTHANC_PORT} is taken (another Orthanc?); stop it first")
    env = {**os.environ, "ORTHANC_HOME": str(home)}
    try:
        _script(tools / "start_orthanc.sh", env, "--fresh", check=True)
        yield Server(ORTHANC_DICOMWEB, int((home / "run" / "orthanc.pid").read_text()))
    finally:
        _script(tools / "stop_orthanc.sh", env, check=False)


def _script(path: Path, env: dict[str, str], *args: str, check: bool) -> None:
    # The scripts' chatter goes to stderr: stdout carries only the results.
    subprocess.run(["bash", str(path), *args], env=env, check=check, stdout=sys.stderr)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not healthy within {READY_TIMEOUT_S:.0f} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    """Whether something accepts connections on this loopback port."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
