"""Peak memory of the whole server under the largest loads (issue 12).

    python -m benchmarks.memory [--size full|smoke] [--workers N] [--out results.json]

Starts `python -m pacs serve --workers N` on a fresh data directory in a tempdir and runs four
phases, each measured over the server's whole process tree (supervisor, workers, resource
tracker) by `benchmarks.resources.Usage`, after an idle reading taken just before it:

- `stow_multipart`: one multipart/related STOW of 512 instances of 4 MiB (2 GiB), streamed;
- `instance_stow`: one 1.5 GB multi-frame instance (2900 frames of 512x512 int16), single-part;
- `instance_retrieve`: that instance whole (SHA-256 checked) and its frame 1500 (bytes checked);
- `series_retrieve`: 100 retrieves of a 300-instance CT series, 50 at a time, each parsed as
  it streams and its byte count checked.

The client never holds a large body: instances are a header and pixel frames generated as they
are sent. Prints a markdown table, then the JSON; exits 1 if any phase did not verify.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, cached_property, partial
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

from benchmarks import multipart
from benchmarks.dataset import CTFactory, Series, new_run_id
from benchmarks.dicomweb import (
    ACCEPT_FRAMES,
    DICOM,
    DICOM_JSON,
    FAILED_SOP_SEQUENCE,
    REFERENCED_SOP_INSTANCE_UID,
    REFERENCED_SOP_SEQUENCE,
    DicomWebClient,
    StatusError,
    open_session,
    stow_request,
)
from benchmarks.load import write
from benchmarks.resources import SAMPLE_INTERVAL_S, TREE_EVERY, Usage, process_tree
from benchmarks.servers import Server, pacs_server
from benchmarks.timing import VerificationError, run_pool
from pacs.settings import Settings

MULTIFRAME_WORD_SC = UID("1.2.840.10008.5.1.4.1.1.7.3")  # Multi-frame Grayscale Word SC
# (7FE0,0010) Pixel Data, VR OW, in Explicit VR Little Endian (PS3.5 7.1.2): its 32-bit length
PIXEL_DATA_HEADER = b"\xe0\x7f\x10\x00OW\x00\x00"
FRAME_BANK = 8  # distinct frames cycled through, each stamped with its frame number
STOW_SIDE, INSTANCE_SIDE = 1024, 512  # Rows = Columns of the multipart and the big instance
SEED_BATCH = 25  # instances per STOW request when storing the retrieved series
SETTLE_S = 1.0  # pause before each idle reading
DISK_MARGIN = 1.25  # free disk wanted, over the bytes stored
MIB = 1024 * 1024


@dataclass(frozen=True)
class Size:
    """How big each phase is."""

    stow_instances: int  # in the multipart STOW, each of `stow_frames` 1024x1024 frames
    stow_frames: int
    instance_frames: int  # of the big instance, 512x512
    probe_frame: int  # the frame of the big instance fetched alone
    series_instances: int  # 512x512 CT
    concurrency: int
    retrieves: int

    @property
    def stored_bytes(self) -> int:
        stow = self.stow_instances * self.stow_frames * STOW_SIDE**2 * 2
        return stow + self.instance_frames * INSTANCE_SIDE**2 * 2 + self.series_instances * MIB


SIZES = {
    "full": Size(512, 2, 2900, 1500, 300, 50, 100),
    "smoke": Size(10, 1, 60, 30, 8, 5, 10),
}


@cache
def _bank(side: int) -> tuple[bytes, ...]:
    rng = np.random.default_rng(12)
    return tuple(rng.integers(0, 4096, side * side, "<i2").tobytes() for _ in range(FRAME_BANK))


@dataclass(frozen=True)
class Volume:
    """A multi-frame 16-bit instance (Explicit VR Little Endian) that is never held whole:
    its Part 10 bytes are a header and then each frame, made as they are read."""

    study_uid: str
    series_uid: str
    sop_uid: str
    side: int
    frames: int

    @property
    def frame_bytes(self) -> int:
        return self.side * self.side * 2

    @property
    def size(self) -> int:
        return len(self.header) + self.frames * self.frame_bytes

    @cached_property
    def header(self) -> bytes:
        """Everything before the pixel samples, ending with the Pixel Data element header."""
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = MULTIFRAME_WORD_SC
        ds.file_meta.MediaStorageSOPInstanceUID = UID(self.sop_uid)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.SOPClassUID, ds.SOPInstanceUID = MULTIFRAME_WORD_SC, self.sop_uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID = self.study_uid, self.series_uid
        ds.PatientName, ds.PatientID, ds.Modality = "BENCH^MEMORY", "MEMORY", "OT"
        ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.NumberOfFrames, ds.Rows, ds.Columns = self.frames, self.side, self.side
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        buffer = BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        pixels = self.frames * self.frame_bytes
        return buffer.getvalue() + PIXEL_DATA_HEADER + pixels.to_bytes(4, "little")

    def frame(self, number: int) -> bytes:
        """Frame `number` (from 1): a bank frame whose first 8 bytes are its number."""
        return number.to_bytes(8, "little") + _bank(self.side)[number % FRAME_BANK][8:]

    def chunks(self) -> Iterator[bytes]:
        yield self.header
        for number in range(1, self.frames + 1):
            yield self.frame(number)


def _multipart_chunks(volumes: Sequence[Volume], boundary: str) -> Iterator[bytes]:
    head = f"--{boundary}\r\nContent-Type: {DICOM}\r\n\r\n".encode()
    for volume in volumes:
        yield head
        yield from volume.chunks()
        yield multipart.CRLF
    yield f"--{boundary}--\r\n".encode()


def _tapped(chunks: Iterable[bytes], tap: Callable[[bytes], object]) -> Iterator[bytes]:
    for chunk in chunks:
        tap(chunk)
        yield chunk


async def _body(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    """A request body aiohttp sends chunked, one chunk at a time."""
    for chunk in chunks:
        yield chunk


async def _store(
    client: DicomWebClient, chunks: Iterable[bytes], content_type: str, sop_uids: set[str]
) -> None:
    """POST /studies; expect 200 with each of `sop_uids` referenced and no failure."""
    headers = {"Content-Type": content_type, "Accept": DICOM_JSON}
    url = f"{client.base_url}/studies"
    async with client.session.post(url, data=_body(chunks), headers=headers) as response:
        body = await response.read()
    if response.status != 200:
        raise StatusError("STOW", response.status, body)
    document = orjson.loads(body)
    stored = {
        (item.get(REFERENCED_SOP_INSTANCE_UID) or {}).get("Value", [None])[0]
        for item in (document.get(REFERENCED_SOP_SEQUENCE) or {}).get("Value", [])
    }
    failed = (document.get(FAILED_SOP_SEQUENCE) or {}).get("Value", [])
    if stored != sop_uids or failed:
        raise VerificationError(
            f"STOW: {len(stored & sop_uids)} of {len(sop_uids)} instances "
            f"referenced, {len(failed)} failed"
        )


async def stow_multipart(client: DicomWebClient, size: Size) -> int:
    """One multipart/related STOW of every instance; the instance bytes sent."""
    study, series = generate_uid(), generate_uid()
    volumes = [
        Volume(study, series, generate_uid(), STOW_SIDE, size.stow_frames)
        for _ in range(size.stow_instances)
    ]
    boundary = multipart.new_boundary()
    await _store(
        client,
        _multipart_chunks(volumes, boundary),
        multipart.content_type(DICOM, boundary),
        {v.sop_uid for v in volumes},
    )
    return sum(v.size for v in volumes)


async def stow_instance(
    client: DicomWebClient, volume: Volume, tap: Callable[[bytes], object]
) -> int:
    """The volume as one single-part application/dicom STOW, each chunk given to `tap` as
    it is sent."""
    await _store(client, _tapped(volume.chunks(), tap), DICOM, {volume.sop_uid})
    return volume.size


async def retrieve_instance(
    client: DicomWebClient, volume: Volume, sha256: str, probe_frame: int
) -> int:
    """The volume whole, streamed to a hash that must be `sha256`, then one frame alone."""
    url = (
        f"{client.base_url}/studies/{volume.study_uid}/series/{volume.series_uid}"
        f"/instances/{volume.sop_uid}"
    )
    digest, received = hashlib.sha256(), 0
    accept = {"Accept": f"{DICOM}; transfer-syntax=*"}
    async with client.session.get(url, headers=accept) as response:
        if response.status != 200:
            raise StatusError("retrieve instance", response.status, await response.read())
        async for chunk in response.content.iter_chunked(MIB):
            digest.update(chunk)
            received += len(chunk)
    if digest.hexdigest() != sha256:
        raise VerificationError(
            f"retrieve instance: {received} bytes whose SHA-256 is not "
            f"that of the {volume.size} sent"
        )
    async with client.session.get(
        f"{url}/frames/{probe_frame}", headers={"Accept": ACCEPT_FRAMES}
    ) as response:
        body = await response.read()
    if response.status != 200:
        raise StatusError("frame", response.status, body)
    _, params = multipart.media_type_params(response.headers.get("Content-Type", ""))
    parser = multipart.StreamingParser(params.get("boundary", ""), keep_bodies=True)
    parser.feed(body)
    if [bytes(p.body) for p in parser.parts] != [volume.frame(probe_frame)]:
        raise VerificationError(f"frame {probe_frame}: not the one frame sent")
    return received + len(body)


async def seed_series(client: DicomWebClient, count: int) -> Series:
    """Store a new CT series (before the measured phase that retrieves it)."""
    series = CTFactory().series(count, f"BENCH^MEMORY{new_run_id()}", "MEMORY")
    for start in range(0, count, SEED_BATCH):
        await client.store(stow_request(series.instances[start : start + SEED_BATCH], False))
    return series


async def retrieve_series(client: DicomWebClient, series: Series, size: Size) -> int:
    """`size.retrieves` whole-series retrieves, `size.concurrency` at a time."""
    jobs = [partial(client.retrieve_series, series)] * size.retrieves
    tally = await run_pool(jobs, size.concurrency)
    if tally.errors or tally.failures:
        problems = list(dict.fromkeys(tally.errors + tally.failures))
        raise VerificationError(
            f"series: {len(tally.results)} of {size.retrieves} verified; {problems[:3]}"
        )
    return sum(r.nbytes for r in tally.results)


def _status_kib(pid: int) -> dict[str, int] | None:
    """RSS, and its anonymous, file-backed and shared-memory parts, from /proc/PID/status."""
    try:
        with open(f"/proc/{pid}/status", "rb") as file:
            lines = file.read().splitlines()
    except OSError:
        return None
    names = {b"VmRSS": "rss", b"RssAnon": "anon", b"RssFile": "file", b"RssShmem": "shmem"}
    found = {
        names[n]: int(v.split()[0]) for n, _, v in (x.partition(b":") for x in lines) if n in names
    }
    return found if len(found) == len(names) else None


def _role(pid: int, root: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            command = file.read()
    except OSError:
        return "gone"
    if b"resource_tracker" in command:
        return "resource tracker"
    return "supervisor" if pid == root else "worker" if b"spawn_main" in command else "other"


class PeakProcesses:
    """Each process of a server's tree at the sample where their summed RSS peaked: its role,
    RSS and how much of it is anonymous (heap) or file-backed (libraries)."""

    def __init__(self, root: int) -> None:
        self._root = root
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)
        self._peak: list[dict[str, Any]] = []
        self._peak_kib = -1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[dict[str, Any]]:
        self._stopping.set()
        self._thread.join()
        return self._peak

    def _sample_until_stopped(self) -> None:
        count, roles = 0, {}
        while True:
            if count % TREE_EVERY == 0:  # a respawned worker joins
                roles = {pid: _role(pid, self._root) for pid in process_tree(self._root)}
            found = {pid: kib for pid in roles if (kib := _status_kib(pid)) is not None}
            total = sum(kib["rss"] for kib in found.values())
            if total > self._peak_kib:
                self._peak_kib = total
                self._peak = [
                    {
                        "pid": pid,
                        "role": roles[pid],
                        **{f"{k}_mb": round(v / 1024, 1) for k, v in kib.items()},
                    }
                    for pid, kib in sorted(found.items())
                ]
            if self._stopping.wait(SAMPLE_INTERVAL_S):
                return
            count += 1


async def measure(pid: int, work: Coroutine[Any, Any, int]) -> dict[str, Any]:
    """Run `work` (it returns the payload bytes moved) with the server's tree sampled; its
    idle reading just before, duration, throughput, memory peaks and whether it verified."""
    await asyncio.sleep(SETTLE_S)
    idle = Usage(pid)
    idle.start()
    before = idle.stop()
    usage, processes = Usage(pid), PeakProcesses(pid)
    usage.start()
    processes.start()
    start = time.perf_counter()
    try:
        moved, error = await work, None
    except Exception as exc:  # a refusal, a dropped connection or a wrong answer: recorded
        moved, error = 0, f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    figures = {
        "idle_rss_mb": before["server_rss_peak_mb"],
        "idle_pss_mb": before["server_pss_peak_mb"],
        **usage.stop(),
        "seconds": round(seconds, 2),
        "mb": round(moved / 1e6, 1),
        "mb_per_s": round(moved / 1e6 / seconds, 1),
        "verified": error is None,
        "peak_processes": processes.stop(),
    }
    return figures if error is None else {**figures, "error": error}


async def run_phases(server: Server, size: Size) -> dict[str, dict[str, Any]]:
    """Every phase in turn against `server`."""
    phases: dict[str, dict[str, Any]] = {}
    async with open_session(size.concurrency) as session:
        client = DicomWebClient(session, server.url)
        phases["stow_multipart"] = await measure(server.pid, stow_multipart(client, size))
        _progress("stow_multipart", phases)
        big = Volume(
            generate_uid(), generate_uid(), generate_uid(), INSTANCE_SIDE, size.instance_frames
        )
        digest = hashlib.sha256()
        phases["instance_stow"] = await measure(
            server.pid, stow_instance(client, big, digest.update)
        )
        _progress("instance_stow", phases)
        phases["instance_retrieve"] = await measure(
            server.pid, retrieve_instance(client, big, digest.hexdigest(), size.probe_frame)
        )
        _progress("instance_retrieve", phases)
        series = await seed_series(client, size.series_instances)
        phases["series_retrieve"] = await measure(server.pid, retrieve_series(client, series, size))
        _progress("series_retrieve", phases)
    return phases


def _progress(name: str, phases: dict[str, dict[str, Any]]) -> None:
    shown = {k: v for k, v in phases[name].items() if k != "peak_processes"}
    print(f"[memory] {name}: {shown}", file=sys.stderr, flush=True)


def table(phases: dict[str, dict[str, Any]]) -> str:
    """The markdown table of every phase, then each process's RSS at each phase's peak."""
    lines = [
        "| phase | peak RSS MiB | peak PSS MiB | idle RSS MiB | seconds | MB/s | verified |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {f['server_rss_peak_mb']} | {f['server_pss_peak_mb']} | "
        f"{f['idle_rss_mb']} | {f['seconds']} | {f['mb_per_s']} | "
        f"{'yes' if f['verified'] else 'NO: ' + f['error'][:120]} |"
        for name, f in phases.items()
    ]
    lines += [
        "",
        "| phase, at its RSS peak | process | RSS MiB | anonymous | file-backed |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {p['role']} {p['pid']} | {p['rss_mb']} | {p['anon_mb']} | {p['file_mb']} |"
        for name, f in phases.items()
        for p in f["peak_processes"]
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.memory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--out", type=Path, help="also write the JSON document here")
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if free < size.stored_bytes * DISK_MARGIN:
        raise SystemExit(
            f"benchmarks.memory: {free / 1e9:.1f} GB free in "
            f"{tempfile.gettempdir()}, {size.stored_bytes * DISK_MARGIN / 1e9:.1f} "
            "GB needed"
        )
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="pacs-memory-") as scratch:
        log = Path(scratch) / "server.log"
        with pacs_server(Path(scratch) / "data", log, args.workers) as server:
            phases = asyncio.run(run_phases(server, size))
        if not all(f["verified"] for f in phases.values()):
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
    document = {
        "size": args.size,
        "workers": args.workers,
        "started_utc": started,
        "host": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "settings": {
            name: getattr(settings, name)
            for name in (
                "max_instance_bytes",
                "pixel_cache_bytes",
                "stage_buffer_bytes",
                "read_chunk_bytes",
                "index_readers",
            )
        },
        "phases": phases,
    }
    print(table(phases) + "\n")
    write(document, args.out)
    return 0 if all(f["verified"] for f in phases.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
