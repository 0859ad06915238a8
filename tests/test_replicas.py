"""Stateless replicas (issue 15): three `pacs serve` processes on one PostgreSQL and one S3
bucket, with a client spreading STOW, QIDO, WADO, DELETE and management calls over them at
random while replicas are SIGKILLed and restarted. Afterwards nothing acknowledged is lost
(byte for byte, from any replica), a search on any replica finds every instance stored and
none deleted, the sweeper leaves no orphan, and `pacs verify` finds the archive healthy.

The kill moments come from a seed that is printed; PACS_REPLICA_SEED repeats the choices.
`-m long` runs two minutes instead of about twenty seconds."""

import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.served_process import Replica, free_port, running
from tests.storage import postgres_server, s3_server
from tests.stow_ledger import (
    DICOM,
    ClientThreads,
    Ledger,
    Sent,
    indexed_instances,
    new_instances,
    stow,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

REPLICAS = 3
CLIENTS = 6
AS_STORED = {"Accept": f"{DICOM}; transfer-syntax=*"}
DATASETS = "/v1/projects/local/locations/local/datasets"
STORE = f"{DATASETS}/default/dicomStores/default"


@dataclass
class Deletes:
    """Instances a DELETE answered (gone for sure) and those whose DELETE got no answer."""

    done: set[str] = field(default_factory=set)
    unsure: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Clients(ClientThreads):
    """CLIENTS threads, each call to a replica chosen at random."""

    def __init__(self, replicas: list[Replica], ledger: Ledger, deletes: Deletes,
                 seed: int) -> None:
        self._replicas, self._ledger, self._deletes = replicas, ledger, deletes
        self.errors: list[str] = []
        self.calls: dict[str, int] = {}
        super().__init__(CLIENTS, seed)

    def client(self, seed: int) -> None:
        rng = random.Random(seed)
        actions = [(0.55, self._store), (0.2, self._retrieve), (0.1, self._search),
                   (0.1, self._delete), (0.05, self._manage)]
        with requests.Session() as session:
            while not self.stop.is_set():
                root = rng.choice(self._replicas).base
                pick, action = rng.random(), actions[-1][1]
                for share, candidate in actions:
                    if pick < share:
                        action = candidate
                        break
                    pick -= share
                try:
                    action(session, root, rng)
                except requests.RequestException:
                    self._ledger.failed()  # a replica being killed or restarting
                    self.stop.wait(0.02)
                except Exception as exc:  # noqa: BLE001 - reported by the test
                    self.errors.append(f"{action.__name__}: {exc!r}")
                self.calls[action.__name__] = self.calls.get(action.__name__, 0) + 1

    def _store(self, session: requests.Session, root: str, rng: random.Random) -> None:
        instances = new_instances(rng.randint(1, 4))
        self._ledger.about_to_send(instances)
        self._ledger.answered(instances, stow(session, f"{root}/dicomweb", instances))

    def _stored(self, rng: random.Random) -> Sent | None:
        with self._ledger.lock:
            candidates = sorted(self._ledger.acknowledged)
        with self._deletes.lock:
            gone = self._deletes.done | self._deletes.unsure
        alive = [sop for sop in candidates if sop not in gone]
        return self._ledger.sent[rng.choice(alive)] if alive else None

    def _retrieve(self, session: requests.Session, root: str, rng: random.Random) -> None:
        sent = self._stored(rng)
        if sent is None:
            return
        answer = session.get(f"{root}/dicomweb{sent.path}", headers=AS_STORED, timeout=30)
        with self._deletes.lock:
            deleted_meanwhile = sent.sop in self._deletes.done | self._deletes.unsure
        if answer.status_code == 404 and deleted_meanwhile:
            return
        if answer.status_code != 200 or answer.content != sent.data:
            self.errors.append(f"retrieve {sent.sop}: {answer.status_code}")

    def _search(self, session: requests.Session, root: str, rng: random.Random) -> None:
        answer = session.get(f"{root}/dicomweb/studies", params={
            "PatientName": "crash*", "limit": 50}, timeout=30)
        if answer.status_code not in (200, 204):
            self.errors.append(f"search: {answer.status_code} {answer.text[:200]}")

    def _delete(self, session: requests.Session, root: str, rng: random.Random) -> None:
        sent = self._stored(rng)
        if sent is None:
            return
        with self._deletes.lock:
            self._deletes.unsure.add(sent.sop)
        answer = session.delete(f"{root}/dicomweb{sent.path}", timeout=30)
        with self._deletes.lock:
            if answer.status_code in (200, 404):  # 404: another client deleted it first
                self._deletes.unsure.discard(sent.sop)
                self._deletes.done.add(sent.sop)
            else:
                self.errors.append(f"delete {sent.sop}: {answer.status_code}")

    def _manage(self, session: requests.Session, root: str, rng: random.Random) -> None:
        for path in (DATASETS, STORE, f"{STORE}:getDICOMStoreMetrics"):
            answer = session.get(root + path, timeout=30)
            if answer.status_code != 200:
                self.errors.append(f"GET {path}: {answer.status_code} {answer.text[:200]}")


def _seed() -> int:
    seed = int(os.environ.get("PACS_REPLICA_SEED") or random.SystemRandom().randrange(10**6))
    print(f"\nreplica test seed: {seed} (PACS_REPLICA_SEED)")
    return seed


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[Replica]]:
    bucket = s3_server.shared()
    blobs = f"s3://{s3_server.BUCKET}/{uuid.uuid4().hex[:12]}"
    index = postgres_server.index_dsn(tmp_path)
    env = {**os.environ, **bucket.env}
    with running([Replica(n, free_port(), ["--data", str(tmp_path / f"replica{n}"), "--index",
                                           index, "--blobs", blobs, "--workers", "1"], env,
                          log=tmp_path / f"replica{n}.log") for n in range(REPLICAS)]
                 ) as started:
        yield started


@pytest.mark.parametrize("seconds", [
    20, pytest.param(120, marks=pytest.mark.long)], ids=["short", "long"])
def test_replicas_lose_nothing_while_killed(tmp_path: Path, replicas: list[Replica],
                                            seconds: int) -> None:
    seed = _seed()
    rng = random.Random(seed)
    ledger, deletes = Ledger(), Deletes()
    kills = 0
    with Clients(replicas, ledger, deletes, seed) as clients:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(2.0, 4.0))
            victim = rng.choice(replicas)
            victim.kill()
            kills += 1
            time.sleep(rng.uniform(0.2, 1.0))
            victim.start()
    print(f"{kills} kills; calls {clients.calls}; {len(ledger.acknowledged)} acknowledged, "
          f"{len(deletes.done)} deleted, {ledger.connection_errors} connection errors")
    assert kills >= 3 and len(ledger.acknowledged) > 50
    assert not clients.errors, clients.errors[:10]
    assert not ledger.unexpected, ledger.unexpected[:10]

    kept = ledger.acknowledged - deletes.done - deletes.unsure
    with requests.Session() as session:
        for sop in sorted(kept):
            root = rng.choice(replicas).base
            answer = session.get(f"{root}/dicomweb{ledger.sent[sop].path}",
                                 headers=AS_STORED, timeout=60)
            assert answer.status_code == 200 and answer.content == ledger.sent[sop].data, sop
    for replica in replicas:
        found = set(indexed_instances(f"{replica.base}/dicomweb"))
        assert kept <= found, f"replica {replica.number} misses {sorted(kept - found)[:5]}"
        assert not found & deletes.done, f"replica {replica.number} finds deleted instances"

    # the sweeper, with no grace (nothing is being stored now), until `pacs verify` finds
    # nothing: no orphan blob, no staging leftover, no queued removal, no miscount
    sweeper = replicas[0]
    sweeper.stop()
    sweeper.start("--cleanup-delay-seconds", "0", "--cleanup-interval-seconds", "1",
                  "--orphan-grace-seconds", "0", "--staging-grace-seconds", "0",
                  "--removal-grace-seconds", "0")
    deadline = time.monotonic() + 60
    while True:
        verified = subprocess.run(
            [sys.executable, "-m", "pacs", "verify", "--grace", "0", *sweeper.args[:6]],
            capture_output=True, text=True, timeout=300, env=sweeper.env, check=False)
        if verified.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    found = set(indexed_instances(f"{sweeper.base}/dicomweb"))
    assert kept <= found <= set(ledger.sent) - deletes.done
