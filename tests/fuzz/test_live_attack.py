"""A live attack: thousands of malformed requests (see attacks.py) from 8 threads against a
real server on a real SQLite file and blob directory, with valid ones mixed in.

Afterwards: no answer was a 5xx, no response was cut short, the server logged no internal
error, /healthz answered throughout, staging/ is empty, and every baseline instance stored
before the attack is retrieved byte-identical. The attack may store
new instances; it never deletes, updates or replaces baseline ones (attacks.py makes sure).

A 503 is the one 5xx allowed (a query stopped for running too long); a 507 says the disk is
full, which it is not here, so it counts as a failure too, as does a Store answer failing an
instance as Out of Resources (A700).

The CI run sends 10,000 requests; `pytest -m long` sends 100,000 (PACS_ATTACK_REQUESTS sets
another count, PACS_ATTACK_SEED another seed). Each request i is drawn from
random.Random(f"{seed}:{i}"), so a failing one can be drawn again and sent alone.
"""

import hashlib
import http.client
import itertools
import json
import logging
import os
import random
import re
import select
import shutil
import socket
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from urllib.parse import unquote

import pydicom
import pytest
import requests

from tests.conftest import run_server
from tests.dataset_factories import corpus_files, ct_series
from tests.fuzz.attack_model import (
    DICOMWEB,
    FUZZ_DATASET,
    GOOGLE_STORE,
    SCRATCH_STORE,
    Instance,
    Request,
    Targets,
)
from tests.fuzz.attacks import draw
from tests.fuzz.server_errors import is_server_error

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SEED = os.environ.get("PACS_ATTACK_SEED", "1729")
CI_REQUESTS = 10_000
LONG_REQUESTS = int(os.environ.get("PACS_ATTACK_REQUESTS", "100000"))
WORKERS = int(os.environ.get("PACS_ATTACK_WORKERS", "8"))
AS_STORED = "application/dicom; transfer-syntax=*"


@dataclass
class Problem:
    """A request the server failed: a 5xx, or a response cut short (status None)."""

    request: Request
    status: int | None
    detail: str
    started: float  # time.time() when it was sent
    ended: float  # and when its answer (or the break) came


@dataclass
class LoggedError:
    logger: str
    message: str
    tail: str  # the traceback's last lines
    created: float
    used: bool = False  # explained by a failed request


def traceback_tail(exc: BaseException) -> str:
    """The last frame of ours (pacs/, storage/), the last frame, and the exception."""
    found = traceback.TracebackException.from_exception(exc)
    ours = [f for f in found.stack if "/pacs/" in f.filename or "/storage/" in f.filename]
    frames = [*ours[-1:], *found.stack[-1:]] if found.stack else []
    lines = list(dict.fromkeys(f'File "{f.filename}", line {f.lineno}, in {f.name}\n'
                               f'    {f.line}' for f in frames))
    message = "".join(found.format_exception_only()).strip().splitlines()[:1]
    return "\n".join([*lines, *message])


class ErrorLog(logging.Handler):
    """Every ERROR the server logs (with its traceback), in the server's own process."""

    LOGGERS = ("pacs", "uvicorn.error")

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[LoggedError] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        tail = ""
        if record.exc_info and record.exc_info[1] is not None:
            try:
                tail = traceback_tail(record.exc_info[1])
            except Exception as exc:  # never lose the record
                tail = f"(no traceback: {exc!r})"
        with self._lock:
            self.records.append(LoggedError(record.name, record.getMessage(), tail,
                                            record.created))

    def __enter__(self) -> "ErrorLog":
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)


class Http:
    """One keep-alive connection (http.client sends paths and headers as given), renewed
    when the server has closed it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection: http.client.HTTPConnection | None = None
        self.previous = ""  # the last exchange on this connection (to judge a reset)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.connection = None
        self.previous = ""

    def _open(self) -> http.client.HTTPConnection:
        """The kept-alive connection if the server has not closed it, else a new one (so
        that a connection dropped mid-request is the server's doing, never a stale one)."""
        sock = self.connection.sock if self.connection is not None else None
        if sock is not None and select.select([sock], [], [], 0)[0]:
            self.close()  # readable while idle: the server closed it (or sent junk)
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        return self.connection

    def send(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body; OSError or HTTPException if the exchange broke."""
        connection = self._open()
        previous, self.previous = self.previous, request.describe()[:300]
        try:
            connection.putrequest(request.method, request.path, skip_accept_encoding=True)
            for name, value in request.headers:
                connection.putheader(name, value)
            if request.chunks is not None:
                connection.putheader("Transfer-Encoding", "chunked")
            elif request.body is not None or request.method in ("POST", "PUT", "PATCH"):
                connection.putheader("Content-Length", str(len(request.body or b"")))
            connection.endheaders()
            if request.chunks is not None:
                for chunk in request.chunks:
                    if chunk:
                        connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                connection.send(b"0\r\n\r\n")
            elif request.body:
                connection.send(request.body)
            response = connection.getresponse()
            body = response.read()
        except BaseException as exc:  # whatever broke, the connection is unusable now
            self.close()
            if previous:
                exc.add_note(f"after, on the same connection: {previous}")
            raise
        headers = {k.lower(): v for k, v in response.getheaders()}
        sent_body = request.chunks is not None or bool(request.body)
        if response.will_close or response.status >= 500 or (sent_body and
                                                              response.status >= 400):
            # refused early, the server may not have read the rest of the body; and after
            # an exception uvicorn drops the connection once the 500 is sent
            self.close()
        return response.status, headers, body


OUT_OF_RESOURCES = 0xA700  # PS3.4 B.2.3 FailureReason


def failure_reasons(answer: object) -> list[int]:
    """The FailureReason of each FailedSOPSequence item of a Store answer (DICOM JSON)."""
    if not isinstance(answer, dict):
        return []
    items = (answer.get("00081198") or {}).get("Value") or []
    return [((item.get("00081197") or {}).get("Value") or [0])[0] for item in items
            if isinstance(item, dict)]


_STATUS_LINE = re.compile(rb"(?:^|\r\n)HTTP/1\.[01] (\d{3}) ")


def send_raw(port: int, data: bytes) -> list[int]:
    """Send `data` as it is, close our side, and read the statuses of every answer."""
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, OSError):
            pass
    return [int(status) for status in _STATUS_LINE.findall(bytes(received))]


class Healthz(threading.Thread):
    """Polls /healthz every 50 ms while the attack runs."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.checks = 0
        self.failures: list[str] = []
        self.slowest = 0.0

    def run(self) -> None:
        while not self.stop.wait(0.05):
            started = time.monotonic()
            try:
                answer = requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=10)
                if answer.status_code != 200:
                    self.failures.append(f"{answer.status_code}: {answer.text[:100]}")
            except requests.RequestException as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.checks += 1


@dataclass
class Report:
    sent: int = 0
    seconds: float = 0.0
    statuses: Counter[tuple[str, int | None]] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # requests the attack failed to draw
    busy: dict[str, float] = field(default_factory=dict)  # seconds spent waiting, per kind
    out_of_resources: list[str] = field(default_factory=list)  # A700 with room on the disk
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, request: Request, status: int | None, detail: str,
               started: float) -> None:
        with self.lock:
            self.sent += 1
            self.statuses[(request.kind, status)] += 1
            self.busy[request.kind] = self.busy.get(request.kind, 0.0) + time.time() - started
            if status is None or is_server_error(status):
                self.problems.append(Problem(request, status, detail, started, time.time()))

    def summary(self) -> str:
        kinds = Counter[str]()
        for (kind, _), count in self.statuses.items():
            kinds[kind] += count
        lines = [f"{self.sent} requests in {self.seconds:.1f} s "
                 f"({self.sent / max(self.seconds, 1e-9):.0f}/s) from {WORKERS} threads"]
        lines.append(f"  drawing requests took {self.busy.get('(drawing)', 0.0):.1f} s in all")
        for kind, count in kinds.most_common():
            by_status = sorted(((s if s is not None else -1), n)
                               for (k, s), n in self.statuses.items() if k == kind)
            shown = ", ".join(f"{'cut' if s == -1 else s}: {n}" for s, n in by_status)
            lines.append(f"  {kind:11} {count:6} {self.busy.get(kind, 0.0):6.1f} s  {shown}")
        return "\n".join(lines)


class Archive:
    """The attacked server: a baseline stored before the attack, and its checksums."""

    def __init__(self, port: int, data_dir: Path) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.data_dir = data_dir
        self.http = requests.Session()
        self.baseline: list[Instance] = []
        self.checksums: dict[str, str] = {}

    def prepare(self) -> None:
        for path, body in [("/v1/projects/p/locations/l/datasets?datasetId=fuzz", b"{}"),
                           (f"/v1/{FUZZ_DATASET}/dicomStores?dicomStoreId=google", b"{}"),
                           (f"/v1/{FUZZ_DATASET}/dicomStores?dicomStoreId=scratch", b"{}")]:
            made = self.http.post(self.base + path, data=body)
            assert made.status_code == 200, made.text
        assert SCRATCH_STORE.startswith(FUZZ_DATASET)
        self.store(DICOMWEB, [*corpus_files().values(), *ct_series(3, size=16)])
        self.store(f"/v1/{GOOGLE_STORE}/dicomWeb",
                   [corpus_files()["MR_small_RLE.dcm"], *ct_series(2, size=16)])
        for item in self.baseline:
            self.checksums[item.path] = self.checksum(item)

    def store(self, root: str, files: list[bytes]) -> None:
        boundary = "baseline"
        body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + f
                        + b"\r\n" for f in files) + f"--{boundary}--\r\n".encode()
        stored = self.http.post(f"{self.base}{root}/studies", data=body, headers={
            "Content-Type": f"multipart/related; type=application/dicom; boundary={boundary}",
            "Accept": "application/dicom+json"})
        assert stored.status_code == 200, stored.text
        for data in files:
            ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=False)
            item = Instance(root, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
                            int(ds.get("NumberOfFrames") or 1), "PixelData" in ds)
            self.baseline.append(item)
            got = self.http.get(self.base + item.path, headers={"Accept": AS_STORED})
            assert got.status_code == 200 and got.content == data, item.path

    def checksum(self, item: Instance) -> str:
        got = self.http.get(self.base + item.path, headers={"Accept": AS_STORED}, timeout=60)
        if got.status_code != 200:
            return f"HTTP {got.status_code}"
        return hashlib.sha256(got.content).hexdigest()

    def changed(self) -> list[str]:
        return [f"{path}: {before} -> {after}" for path, before in self.checksums.items()
                if (after := self.checksum(next(i for i in self.baseline if i.path == path)))
                != before]

    def staged(self, wait: float = 10.0) -> list[str]:
        """Files left in staging/ once in-flight work had `wait` seconds to finish."""
        deadline = time.monotonic() + wait
        while True:
            left = sorted(str(p.relative_to(self.data_dir))
                          for p in (self.data_dir / "staging").rglob("*") if p.is_file())
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)


def attack(port: int, targets: Targets, count: int, report: Report) -> None:
    """`count` requests from WORKERS threads; each records its outcome in `report`."""
    indexes = itertools.count()
    lock = threading.Lock()

    def worker() -> None:
        client = Http(port)
        while True:
            with lock:
                index = next(indexes)
            if index >= count:
                break
            try:
                exchange(client, index)
            except Exception as exc:  # a bug of the attack itself
                report.broken.append(f"request #{index}: {traceback_tail(exc)}")
        client.close()

    def exchange(client: Http, index: int) -> None:
        drawing = time.time()
        request = draw(random.Random(f"{SEED}:{index}"), targets)
        started = time.time()
        with report.lock:
            report.busy["(drawing)"] = report.busy.get("(drawing)", 0.0) + started - drawing
        if request.raw is not None:
            statuses = send_raw(port, request.raw)
            bad = [s for s in statuses if is_server_error(s)]
            report.record(request, bad[0] if bad else statuses[0] if statuses else 0,
                          f"request #{index}: statuses {statuses}", started)
            return
        try:
            status, headers, body = client.send(request)
        except (OSError, http.client.HTTPException) as exc:
            notes = " ".join(getattr(exc, "__notes__", []))
            report.record(request, None, f"request #{index}: {type(exc).__name__}: {exc} "
                          f"{notes}", started)
            return
        report.record(request, status, f"request #{index}: {body[:300]!r}", started)
        if request.stores and headers.get("content-type", "").startswith(
                "application/dicom+json"):
            try:
                answer = json.loads(body)
            except ValueError:
                return
            targets.learn(request, answer)
            if status != 507 and OUT_OF_RESOURCES in failure_reasons(answer):
                with report.lock:
                    report.out_of_resources.append(f"request #{index}: {request.describe()}"
                                                   f"\n      -> {body[:300]!r}")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


_UID = re.compile(r"\d+(\.\d+){3,}")
# seconds between a request and its log record: a pacs record is written before the answer,
# uvicorn's once the 500 is sent (or the connection dropped)
_SLACK, _UVICORN_SLACK = 0.1, 2.0


def _signature(tail: str) -> str:
    """The exception line of a traceback tail, UIDs elided (to group alike failures)."""
    text = tail.strip()
    return _UID.sub("<uid>", text.splitlines()[-1] if text else "")[:300]


def _cause(problem: Problem, log: ErrorLog) -> LoggedError | None:
    """The server's log record of `problem`: the "unhandled error" of its method and path
    for a 500, else any traceback uvicorn logged meanwhile (for a response cut short, or a
    BaseException no handler of ours catches)."""
    if problem.status not in (None, 500):
        return None  # answered on purpose, with no traceback (a 507, say)
    path = unquote(problem.request.path.split("?")[0]).rstrip("/") or "/"
    window = [r for r in log.records if not r.used and r.tail
              and problem.started - _SLACK <= r.created <= problem.ended + _UVICORN_SLACK]
    wanted = f"unhandled error on {problem.request.method} {path}"
    found = next((r for r in window if r.message == wanted
                  and r.created <= problem.ended + _SLACK), None)
    if found is None:  # not an Exception (a BaseException), or raised while streaming
        found = next((r for r in window if r.logger == "uvicorn.error"), None)
    if found is not None:
        found.used = True
        for twin in window:  # uvicorn logs the same exception again once the 500 is sent
            if twin.logger == "uvicorn.error" and twin.tail == found.tail:
                twin.used = True
    return found


def findings(report: Report, log: ErrorLog) -> list[str]:
    """Each distinct failure, the most frequent first: the last lines of the server's
    traceback and up to three requests that caused it; then the errors the server logged
    that no failed request explains (an instance failed as "Processing failure" because of
    an exception of ours, say)."""
    groups: dict[str, list[Problem]] = {}
    tails: dict[str, str] = {}
    for problem in sorted(report.problems, key=lambda p: p.started):
        cause = _cause(problem, log)
        status = problem.status or "cut short"
        key = f"{status} {problem.request.kind}: " + (
            _signature(cause.tail) if cause else "(no traceback logged)")
        groups.setdefault(key, []).append(problem)
        tails.setdefault(key, cause.tail if cause else "")
    out = []
    for key, problems in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        examples = "\n".join(f"    - {p.request.describe()}\n      -> {p.detail[:300]}"
                             for p in problems[:3])
        tail = "\n".join("      | " + line for line in tails[key].splitlines())
        out.append(f"[{len(problems)}x] {key}\n{tail}\n{examples}")
    quiet: Counter[str] = Counter()
    quiet_tails: dict[str, str] = {}
    for record in log.records:
        if record.used:
            continue
        key = f"logged by {record.logger}: {record.message[:120]} :: {_signature(record.tail)}"
        quiet[key] += 1
        quiet_tails.setdefault(key, record.tail)
    for key, count in quiet.most_common():
        tail = "\n".join("      | " + line for line in quiet_tails[key].splitlines())
        out.append(f"[{count}x] {key}\n{tail}")
    return out


def run_attack(data_dir: Path, count: int) -> None:
    report = Report()
    # uvicorn configures its loggers as it starts (dropping their handlers): listen after
    with run_server(data_dir) as running, ErrorLog() as log:
        assert shutil.disk_usage(data_dir.parent).free > 2 * 1024**3, "too little disk to attack"
        archive = Archive(running.port, data_dir)
        archive.prepare()
        targets = Targets(list(archive.baseline))
        healthz = Healthz(running.port)
        healthz.start()
        started = time.monotonic()
        try:
            attack(running.port, targets, count, report)
        finally:
            report.seconds = time.monotonic() - started
            healthz.stop.set()
            healthz.join()
        staged = archive.staged()
        changed = archive.changed()
        print(f"\n{report.summary()}\n/healthz: {healthz.checks} checks, slowest "
              f"{healthz.slowest:.2f} s; {len(targets.fresh)} instances stored by the attack")
        failures = findings(report, log)
    problems = []
    if report.broken:
        problems.append(f"the attack could not draw {len(report.broken)} requests: "
                        f"{report.broken[:3]}")
    if failures:
        problems.append(f"{len(report.problems)} failed requests and "
                        f"{len(log.records)} logged errors, {len(failures)} distinct:\n" +
                        "\n".join(failures))
    if report.out_of_resources:
        shown = "\n".join(f"    - {line}" for line in report.out_of_resources[:5])
        problems.append(f"{len(report.out_of_resources)} Store answers failed an instance as "
                        f"Out of Resources (A700) though the disk has room:\n{shown}")
    if healthz.failures or not healthz.checks:
        problems.append(f"/healthz failed {len(healthz.failures)} of {healthz.checks} times: "
                        f"{healthz.failures[:5]}")
    if staged:
        problems.append(f"staging/ not empty after the attack: {staged[:20]}")
    if changed:
        problems.append(f"baseline instances changed: {changed}")
    assert not problems, "\n\n".join(problems)


def test_ten_thousand_malformed_requests(tmp_path: Path) -> None:
    run_attack(tmp_path / "data", CI_REQUESTS)


@pytest.mark.long
def test_a_hundred_thousand_malformed_requests(tmp_path: Path) -> None:
    run_attack(tmp_path / "data", LONG_REQUESTS)
