"""Crash recovery: `pacs serve` is SIGKILLed at random moments while eight clients STOW
single-part and multipart bodies; after each restart every acknowledged instance retrieves
byte for byte, and the index and the blobs agree.

A round kills either the whole process group (supervisor and workers at once, as a power cut
would) or one worker (the supervisor replaces it). The seed of the kill moments is printed;
set PACS_CRASH_SEED to run the same choices again (thread timing still varies).
"""

import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from pacs.settings import Settings
from tests.conftest import run_server
from tests.stow_ledger import (
    DICOM,
    ClientThreads,
    Ledger,
    indexed_instances,
    new_instances,
    stow,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# "group": SIGKILL the supervisor and its workers at once, then restart; "worker": SIGKILL one
# worker and let the supervisor replace it. The last round should be a group kill.
ROUNDS = ("group", "worker", "group", "group", "worker", "group")
CLIENTS = 8
KILL_WINDOW = (0.3, 1.5)  # seconds after the clients start
TRAFFIC_AFTER_WORKER_KILL = 1.0  # seconds the survivors serve before the check
MAX_PARTS = 6
START_TIMEOUT = 60.0
AS_STORED = {"Accept": f"{DICOM}; transfer-syntax=*"}
ORPHAN_GRACE = Settings().orphan_grace_seconds  # what `pacs serve` sweeps unreferenced blobs after


class Traffic(ClientThreads):
    """CLIENTS threads sending STOWs until stopped; every answer goes into the ledger."""

    def __init__(self, root: str, ledger: Ledger, seed: int) -> None:
        self._root = root
        self._ledger = ledger
        self._errors: list[BaseException] = []
        super().__init__(CLIENTS, seed)

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        assert not self._errors, self._errors

    def client(self, seed: int) -> None:
        rng = random.Random(seed)
        try:
            with requests.Session() as session:
                while not self.stop.is_set():
                    instances = new_instances(1 if rng.random() < 0.5
                                              else rng.randint(2, MAX_PARTS))
                    self._ledger.about_to_send(instances)
                    try:
                        response = stow(session, self._root, instances)
                    except requests.RequestException:
                        self._ledger.failed()
                        self.stop.wait(0.02)
                        continue
                    self._ledger.answered(instances, response)
        except BaseException as exc:  # noqa: B036 - reported by __exit__
            self._errors.append(exc)


# -- The server as a process group -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return children


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie waiting to be reaped has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


class Served:
    """`python -m pacs serve --workers 2` in a new session (its own process group)."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pacs", "serve", "--port", str(self.port),
                 "--data", str(data_dir), "--workers", "2"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_until_healthy()

    @property
    def root(self) -> str:
        return f"{self.base}/dicomweb"

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if requests.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            assert self.process.poll() is None and time.monotonic() < deadline, \
                f"the server did not (re)start:\n{self.log.read_text()[-3000:]}"
            time.sleep(0.05)

    def workers(self) -> list[int]:
        return [pid for pid in _children(self.process.pid)
                if "spawn_main" in _cmdline(pid) and not _gone(pid)]

    def kill_group(self) -> None:
        """SIGKILL the supervisor and every worker at once; return once all are dead."""
        pids = [self.process.pid, *_children(self.process.pid)]
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while not all(_gone(pid) for pid in pids):
            assert time.monotonic() < deadline, "killed processes linger"
            time.sleep(0.01)

    def startups(self) -> int:
        """How many workers have started serving so far, as the log says."""
        return self.log.read_text().count("Application startup complete")

    def kill_worker(self, rng: random.Random) -> tuple[int, int]:
        """SIGKILL one worker; its pid, and how many workers had started before."""
        workers, started = self.workers(), self.startups()
        assert len(workers) == 2, workers
        victim = rng.choice(workers)
        os.kill(victim, signal.SIGKILL)
        return victim, started

    def wait_for_replacement(self, victim: int, started: int) -> None:
        """Until the supervisor runs two workers again, the new one serving."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            workers = self.workers()
            if len(workers) == 2 and victim not in workers and self.startups() > started:
                break
            assert time.monotonic() < deadline, \
                f"worker {victim} was not replaced:\n{self.log.read_text()[-3000:]}"
            time.sleep(0.05)
        self.wait_until_healthy()


# -- Checks ------------------------------------------------------------------------------------


@dataclass
class IndexAndBlobs:
    """How the index file and the blob directory agree. Read directly from both until
    `pacs verify` exists; then this is what its report should say."""

    rows: dict[str, str]  # SOP Instance UID -> sha256 of its blob, as the index records
    rows_without_blob: list[str]
    rows_with_other_bytes: list[str]  # the blob's size or sha256 is not the row's
    unreferenced: dict[Path, str]  # blob files no row points at -> their sha256
    strays: list[Path]  # files under blobs/ that are not blobs in their place (never swept)
    staged: list[Path]  # staging/ leftovers of interrupted uploads
    miscounted: list[str]  # studies and series whose counts are not their rows', or empty


# Studies and series whose recorded counts differ from the rows below them (or that have none).
COUNTS_DISAGREE = """
SELECT 'study ' || study_uid FROM studies s
 WHERE n_instances != (SELECT count(*) FROM instances WHERE study_pk = s.pk)
    OR n_series != (SELECT count(*) FROM series WHERE study_pk = s.pk) OR n_instances = 0
UNION ALL
SELECT 'series ' || series_uid FROM series se
 WHERE n_instances != (SELECT count(*) FROM instances WHERE series_pk = se.pk)
    OR n_instances = 0
"""


def index_and_blobs(data_dir: Path) -> IndexAndBlobs:
    """Every instance row against its blob file, and every file under blobs/ and staging/,
    from outside the archive (`pacs verify` checks the same from inside; this also ties each
    leftover to what the clients sent, and checks the recorded counts)."""
    index = f"file:{data_dir / 'index.sqlite3'}?mode=ro"
    with closing(sqlite3.connect(index, uri=True)) as conn:
        rows = conn.execute("SELECT sop_uid, blob_name, blob_size, sha256 FROM instances"
                            ).fetchall()
        miscounted = [row[0] for row in conn.execute(COUNTS_DISAGREE)]
    blobs = data_dir / "blobs"
    files = {p for p in blobs.rglob("*") if p.is_file()}
    by_name = {row[1]: row for row in rows}
    missing, other, strays = [], [], []
    unreferenced: dict[Path, str] = {}
    for sop, name, size, sha in rows:
        path = blobs / name[:2] / name[2:4] / name
        data = _read(path) if path in files else None
        if data is None:
            missing.append(f"{sop} (blob {name})")
        elif len(data) != size or _sha(data) != sha:
            other.append(f"{sop} (blob {name})")
    for path in sorted(files):
        name = path.name
        in_place = len(name) == 32 and all(c in "0123456789abcdef" for c in name) \
            and path.relative_to(blobs).parts == (name[:2], name[2:4], name)
        if not in_place:
            strays.append(path)
        elif name not in by_name and (data := _read(path)) is not None:  # None: swept
            unreferenced[path] = _sha(data)
    staged = sorted((data_dir / "staging").iterdir())
    return IndexAndBlobs({sop: sha for sop, _, _, sha in rows}, missing, other, unreferenced,
                         strays, staged, miscounted)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Totals:
    rounds: int = 0
    group_kills: int = 0
    worker_kills: int = 0
    stored_unacknowledged: int = 0  # in flight at a kill, stored all the same
    orphans: int = 0  # committed blobs whose row a kill prevented, at the last check
    staged_leftovers: int = 0
    lost: int = 0


def check_archive(root: str, data_dir: Path, ledger: Ledger, totals: Totals) -> None:
    """Every acknowledged instance retrieves byte-identical; QIDO finds each stored instance
    once, and each of them retrieves as sent; the index and the blobs agree, any blob no row
    points at being a fresh copy of an instance a kill left unacknowledged."""
    indexed = indexed_instances(root)
    assert len(indexed) == len(set(indexed)), "QIDO lists an instance twice"
    unknown = set(indexed) - ledger.sent.keys()
    assert not unknown, f"indexed instances nobody sent: {sorted(unknown)[:10]}"
    wanted = sorted(ledger.acknowledged | set(indexed))
    local = threading.local()

    def retrieve(sop: str) -> tuple[str, int, bytes]:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        response = session.get(root + ledger.sent[sop].path, headers=AS_STORED, timeout=60)
        return sop, response.status_code, response.content

    with ThreadPoolExecutor(CLIENTS) as pool:
        retrieved = {sop: (status, content) for sop, status, content in pool.map(retrieve, wanted)}
    lost = [f"{sop}: {status}, {len(content)} bytes"
            for sop in sorted(ledger.acknowledged)
            for status, content in [retrieved[sop]]
            if status != 200 or content != ledger.sent[sop].data]
    totals.lost = len(lost)
    assert not lost, f"acknowledged instances lost ({len(lost)}): {lost[:20]}"
    bad = [f"{sop}: {status}" for sop in indexed for status, content in [retrieved[sop]]
           if status != 200 or content != ledger.sent[sop].data]
    assert not bad, f"indexed instances that do not retrieve as sent: {bad[:20]}"
    totals.stored_unacknowledged = len(set(indexed) - ledger.acknowledged)

    disk = index_and_blobs(data_dir)
    assert disk.rows.keys() == set(indexed), "QIDO and the index rows disagree"
    assert not disk.rows_without_blob, f"index rows without a blob: {disk.rows_without_blob}"
    assert not disk.rows_with_other_bytes, f"rows whose blob differs: {disk.rows_with_other_bytes}"
    assert not disk.strays, f"files among the blobs no sweep removes: {disk.strays}"
    assert not disk.miscounted, f"counts that disagree with the index rows: {disk.miscounted}"
    assert all(p.suffix == ".part" and p.is_file() for p in disk.staged), disk.staged
    # a blob committed by a store the kill cut off before its row: a copy of an instance sent
    # but neither acknowledged nor indexed, young enough that the sweep has not yet come
    in_flight = {_sha(ledger.sent[sop].data): sop
                 for sop in ledger.sent.keys() - ledger.acknowledged - set(indexed)}
    now = time.time()
    for path, sha in disk.unreferenced.items():
        assert sha in in_flight, f"unreferenced blob {path} is no interrupted store's instance"
        assert now - path.stat().st_mtime < ORPHAN_GRACE, path
    totals.orphans, totals.staged_leftovers = len(disk.unreferenced), len(disk.staged)
    assert pacs_verify(data_dir) == []  # beside the running server, with its grace


def pacs_verify(data_dir: Path, *args: str) -> list[dict[str, str]]:
    """The findings of `pacs verify --json` on `data_dir`."""
    done = subprocess.run([sys.executable, "-m", "pacs", "verify", "--data", str(data_dir),
                           "--json", *args], capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    findings: list[dict[str, str]] = json.loads(done.stdout)["findings"]
    return findings


def _seed() -> int:
    return int(os.environ.get("PACS_CRASH_SEED") or random.SystemRandom().randrange(2**32))


# -- The test ----------------------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[list[Served]]:
    """The servers a test starts (the last one running); all are killed at the end."""
    started: list[Served] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.kill_group()


def test_acknowledged_stores_survive_sigkill(tmp_path: Path, served: list[Served]) -> None:
    crash_rounds(tmp_path, served, ROUNDS)


@pytest.mark.long
def test_acknowledged_stores_survive_many_sigkills(tmp_path: Path,
                                                   served: list[Served]) -> None:
    """The long run (-m long): 42 rounds, about 4 minutes."""
    crash_rounds(tmp_path, served, ROUNDS * 7)


def crash_rounds(tmp_path: Path, served: list[Served], rounds: tuple[str, ...]) -> None:
    seed = _seed()
    print(f"crash test seed {seed} (PACS_CRASH_SEED={seed} repeats the choices)")
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    ledger, totals = Ledger(), Totals()

    def start() -> Served:
        served.append(Served(data_dir, tmp_path / f"server-{len(served)}.log"))
        return served[-1]

    server = start()
    for number, kind in enumerate(rounds, 1):
        kill_at = rng.uniform(*KILL_WINDOW)
        with Traffic(server.root, ledger, rng.randrange(2**32)):
            time.sleep(kill_at)
            if kind == "group":
                server.kill_group()
                totals.group_kills += 1
            else:
                victim, started = server.kill_worker(rng)
                totals.worker_kills += 1
                time.sleep(TRAFFIC_AFTER_WORKER_KILL)
        if kind == "group":
            server = start()
        else:
            server.wait_for_replacement(victim, started)
        check_archive(server.root, data_dir, ledger, totals)
        totals.rounds = number
        assert not ledger.unexpected, ledger.unexpected[:10]
        print(f"round {number}: {kind} kill at {kill_at:.2f} s; so far {len(ledger.acknowledged)}"
              f" acknowledged of {len(ledger.sent)} sent, {totals.stored_unacknowledged} stored "
              f"unacknowledged, {ledger.connection_errors} connection errors; on disk "
              f"{totals.orphans} orphan blobs, {totals.staged_leftovers} staged leftovers")
    server.kill_group()

    # The cleanup sweep, at once and with no grace, removes exactly the leftovers.
    with run_server(data_dir, cleanup_delay_seconds=0, orphan_grace_seconds=-1,
                    staging_grace_seconds=-1):
        deadline = time.monotonic() + 30
        while (disk := index_and_blobs(data_dir)).unreferenced or disk.staged:
            assert time.monotonic() < deadline, "the sweep left the leftovers"
            time.sleep(0.05)
        assert not disk.rows_without_blob and not disk.rows_with_other_bytes
        assert all(disk.rows[sop] == _sha(ledger.sent[sop].data) for sop in ledger.acknowledged)
    assert pacs_verify(data_dir, "--grace", "0") == []
    print(f"totals: {totals.rounds} rounds, {totals.group_kills} group kills, "
          f"{totals.worker_kills} worker kills, {ledger.stows} STOW requests, "
          f"{len(ledger.sent)} instances sent, {len(ledger.acknowledged)} acknowledged, "
          f"{totals.stored_unacknowledged} stored unacknowledged, lost {totals.lost}")
    assert ledger.acknowledged, "no store was acknowledged"
