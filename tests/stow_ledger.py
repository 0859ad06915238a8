"""What a STOW client load keeps track of: every instance it sent, which of them a STOW
response acknowledged, and what went wrong other than the connection errors a killed server
causes, and what a search finds afterwards (tests/test_crash_recovery.py,
tests/test_replicas.py)."""

import threading
from dataclasses import dataclass, field
from io import BytesIO

import requests

from tests.dataset_factories import ct_datasets

BOUNDARY = "stow-ledger-boundary"
DICOM = "application/dicom"
STORE_HEADERS = {"Accept": "application/dicom+json"}


@dataclass(frozen=True)
class Sent:
    """One instance a client sent: its UIDs and bytes."""

    study: str
    series: str
    sop: str
    data: bytes

    @property
    def path(self) -> str:
        return f"/studies/{self.study}/series/{self.series}/instances/{self.sop}"


@dataclass
class Ledger:
    """Every instance sent, which of them a STOW response acknowledged, and what went wrong
    other than the connection errors a kill causes."""

    sent: dict[str, Sent] = field(default_factory=dict)
    acknowledged: set[str] = field(default_factory=set)
    stows: int = 0
    connection_errors: int = 0
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def about_to_send(self, instances: list[Sent]) -> None:
        with self.lock:
            self.stows += 1
            self.sent.update((i.sop, i) for i in instances)

    def answered(self, instances: list[Sent], response: requests.Response) -> None:
        try:
            body = response.json() if response.content else {}
            stored = {item["00081155"]["Value"][0]
                      for item in body.get("00081199", {}).get("Value", [])}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            stored = set()
        wanted = {i.sop for i in instances}
        with self.lock:
            if response.status_code in (200, 202):
                self.acknowledged |= stored & wanted
            if response.status_code != 200 or stored != wanted:
                self.unexpected.append(f"{response.status_code} for {sorted(wanted)}: "
                                       f"{response.text[:500]}")

    def failed(self) -> None:
        with self.lock:
            self.connection_errors += 1


def new_instances(count: int) -> list[Sent]:
    """`count` CT slices of one new series, 32x32 pixels, as Part 10 bytes."""
    instances = []
    for ds in ct_datasets(count, 32, "CRASH^TEST"):
        out = BytesIO()
        ds.save_as(out, enforce_file_format=True)
        instances.append(Sent(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
                              out.getvalue()))
    return instances


def stow(session: requests.Session, root: str, instances: list[Sent]) -> requests.Response:
    """One STOW-RS request: a single-part body for one instance, multipart/related else."""
    if len(instances) == 1:
        return session.post(f"{root}/studies", data=instances[0].data, timeout=30,
                            headers={**STORE_HEADERS, "Content-Type": DICOM})
    head = f"--{BOUNDARY}\r\nContent-Type: {DICOM}\r\n\r\n".encode()
    body = b"".join(head + i.data + b"\r\n" for i in instances) + f"--{BOUNDARY}--\r\n".encode()
    return session.post(f"{root}/studies", data=body, timeout=30, headers={
        **STORE_HEADERS, "Content-Type": f'multipart/related; type="{DICOM}"; boundary={BOUNDARY}'})


def indexed_instances(root: str) -> list[str]:
    """SOP Instance UIDs of every instance a QIDO search finds, page by page."""
    found: list[str] = []
    while True:
        response = requests.get(f"{root}/instances", params={"limit": 10_000,
                                                             "offset": len(found)}, timeout=60)
        if response.status_code == 204:
            return found
        assert response.status_code == 200, response.text
        page = [item["00080018"]["Value"][0] for item in response.json()]
        found += page
        if not page:
            return found


class ClientThreads:
    """`count` client threads, each running `client(seed + n)` until the block ends (the
    subclass's `client` loops while `self.stop` is not set)."""

    def __init__(self, count: int, seed: int) -> None:
        self.stop = threading.Event()
        self._threads = [threading.Thread(target=self.client, args=(seed + n,), daemon=True)
                         for n in range(count)]

    def client(self, seed: int) -> None:
        raise NotImplementedError

    def __enter__(self) -> "ClientThreads":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=120)
        assert not any(t.is_alive() for t in self._threads), "a client did not stop"
