"""C-STORE throughput of our DICOM gateway and Orthanc's DICOM port, side by side in one run.

    python -m benchmarks.dimse_store [--size smoke|full] [--files N] [--rounds R]
                                     [--workers W] [--nagle] [--out results.json]

The Part 10 files are written once, before any timing, to a temporary folder: for each
scenario (512x512 CT, about 0.5 MB an instance; 64x64 CT, about 9 KB) one set for a single
association and one for parallel associations, each set in four folders of one series. dcmtk's
`storescu` then sends each set to each server: the whole set over one association (`+sd +r`),
and four `storescu` processes at once, one folder each. Both servers start on fresh storage
every round and every set has its own UIDs, so nothing sent is a duplicate; the server that
goes first alternates. dcmtk leaves Nagle's algorithm on unless the variable
`TCP_NODELAY` is set, so that a small instance waits on the peer's delayed ACK (about 40 ms
each, on either side): this sets `TCP_NODELAY=1` for storescu and Orthanc (both dcmtk) unless
`--nagle` is given. After each run the archive is counted (ours by QIDO, paged; Orthanc by
its REST `/statistics`) and must hold every instance sent so far.

Prints a markdown table of the medians over the rounds (MB are 10^6 bytes of Part 10 files)
with the ratio ours/Orthanc (> 1: ours is faster), then the JSON document; writes it with
`--out`. Exits 1 when any instance was not stored or a `storescu` failed, 2 when dcmtk is
missing or a server would not start.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.dataset import CTFactory, new_run_id
from benchmarks.resources import Usage
from benchmarks.servers import (
    ORTHANC_PORT,
    ORTHANC_TOOLS,
    REPO,
    free_port,
    listening,
    orthanc_server,
    stop,
)

CALLING_AE = "BENCHSCU"  # storescu's AE title; registered with Orthanc as a modality
OURS_AE = "PACS"
PARTS = 4  # folders per set, and storescu processes in the parallel run
READY_TIMEOUT_S = 60.0
STORESCU_TIMEOUT_S = 1800.0
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Scenario:
    """Instances of one size: `count` per set, `rows` x `columns` int16 CT."""

    name: str
    rows: int
    count: int


SIZES: dict[str, tuple[tuple[Scenario, ...], int]] = {  # scenarios, default rounds
    "smoke": ((Scenario("ct512", 512, 16), Scenario("ct64", 64, 32)), 1),
    "full": ((Scenario("ct512", 512, 1000), Scenario("ct64", 64, 2000)), 3),
}
MODES = ("1 association", f"{PARTS} in parallel")


@dataclass(frozen=True)
class FileSet:
    """A set of Part 10 files on disk: its root folder, split into PARTS folders."""

    scenario: str
    mode: str
    root: Path
    parts: tuple[Path, ...]
    instances: int
    nbytes: int


@dataclass(frozen=True)
class Peer:
    """A running server under test: where its DICOM port is, whom to call, how to count."""

    label: str
    port: int
    called_ae: str
    pid: int
    count: Callable[[], int]
    gateway_pids: tuple[int, ...] = ()  # ours: the gateway's own processes


def dcmtk_storescu() -> str | None:
    """dcmtk's storescu (pynetdicom installs a Python `storescu` that may come first on PATH)."""
    for found in ("/usr/bin/storescu", shutil.which("storescu")):
        if found and Path(found).exists():
            version = subprocess.run([found, "--version"], capture_output=True, text=True,
                                     check=False).stdout
            if "DCMTK" in version.upper():
                return found
    return None


def generate(scenarios: Sequence[Scenario], files: int | None, rounds: int,
             root: Path) -> tuple[dict[tuple[str, str], FileSet], list[Path]]:
    """Every set of every scenario, written once; and one small warm-up file per round."""
    sets = {}
    for scenario in scenarios:
        factory, count = CTFactory(scenario.rows, scenario.rows), files or scenario.count
        for mode_index, mode in enumerate(MODES):
            folder = root / scenario.name / f"mode{mode_index}"
            parts, nbytes = [], 0
            for part in range(PARTS):
                share = count // PARTS + (part < count % PARTS)
                parts.append(folder / f"part{part}")
                nbytes += _write_series(factory, share, parts[-1])
            sets[scenario.name, mode] = FileSet(scenario.name, mode, folder, tuple(parts),
                                                count, nbytes)
    warm = root / "warm-up"
    _write_series(CTFactory(16, 16), rounds, warm)
    return sets, sorted(warm.iterdir())


def _write_series(factory: CTFactory, count: int, folder: Path) -> int:
    folder.mkdir(parents=True)
    series = factory.series(count, f"DIMSE^{new_run_id()}", new_run_id())
    for number, instance in enumerate(series.instances):
        (folder / f"{number:05d}.dcm").write_bytes(instance.data)
    return series.total_bytes


@contextlib.contextmanager
def ours(data_dir: Path, log_path: Path, workers: int) -> Iterator[Peer]:
    """`python -m pacs serve` with its DICOM gateway, on free loopback ports."""
    port, dimse_port = free_port(), free_port()
    command = [sys.executable, "-m", "pacs", "serve", "--host", "127.0.0.1", "--port",
               str(port), "--data", str(data_dir), "--workers", str(workers),
               "--dimse-port", str(dimse_port), "--ae-title", OURS_AE]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: _http_ok(f"http://127.0.0.1:{port}/healthz") and listening(dimse_port),
              lambda: process.poll() is None, log_path)
        base = f"http://127.0.0.1:{port}/dicomweb"
        yield Peer("ours", dimse_port, OURS_AE, process.pid, lambda: _qido_count(base),
                   gateway_pids(process.pid))
    finally:
        stop(process, 30)


@contextlib.contextmanager
def orthanc(home: Path) -> Iterator[Peer]:
    """A fresh Orthanc (shared/tools/orthanc), with storescu's AE title registered as a
    modality: its configuration lets no unknown calling AE store."""
    with orthanc_server(home, ORTHANC_TOOLS) as server:
        rest = f"http://127.0.0.1:{ORTHANC_PORT}"
        system = json.loads(_http(f"{rest}/system"))
        modality = {"AET": CALLING_AE, "Host": "127.0.0.1", "Port": 104}
        _http(f"{rest}/modalities/{CALLING_AE}", json.dumps(modality).encode(), "PUT")
        _wait(lambda: listening(system["DicomPort"]), lambda: True, home / "logs")
        yield Peer("orthanc", system["DicomPort"], system["DicomAet"], server.pid,
                   lambda: int(json.loads(_http(f"{rest}/statistics"))["CountInstances"]))


def send(storescu: str, peer: Peer, folders: Sequence[Path], log_path: Path) -> dict[str, Any]:
    """One storescu per folder, all at once; wall time until the last exits, the server's
    CPU time (ours: the gateway's apart too) and storescu's."""
    usage = Usage(peer.pid)
    gateway_before = _cpu_s(peer.gateway_pids)
    children_before = _children_cpu_s()
    usage.start()
    with log_path.open("ab") as log:
        started = time.perf_counter()
        processes = [subprocess.Popen(
            [storescu, "-aet", CALLING_AE, "-aec", peer.called_ae, "+sd", "+r", "127.0.0.1",
             str(peer.port), str(folder)], stdout=log, stderr=subprocess.STDOUT)
            for folder in folders]
        codes = [process.wait(timeout=STORESCU_TIMEOUT_S) for process in processes]
        seconds = time.perf_counter() - started
    figures = usage.stop()
    figures = {
        "seconds": round(seconds, 3),
        "storescu_exit_codes": codes,
        "server_cpu_s": figures["server_cpu_s"],
        "server_rss_peak_mb": figures["server_rss_peak_mb"],
        "storescu_cpu_s": round(_children_cpu_s() - children_before, 2),
    }
    if peer.gateway_pids:
        figures["gateway_cpu_s"] = round(_cpu_s(peer.gateway_pids) - gateway_before, 2)
    return figures


def measure(storescu: str, sets: dict[tuple[str, str], FileSet], warm_up: Sequence[Path],
            rounds: int, workers: int, work: Path) -> list[dict[str, Any]]:
    """Every set to both servers, round after round, each round on fresh storage."""
    runs = []
    for round_number in range(rounds):
        round_dir = work / f"round{round_number}"
        round_dir.mkdir(parents=True)
        with ExitStack() as stack:
            peers = [stack.enter_context(ours(round_dir / "pacs-data", round_dir / "pacs.log",
                                              workers)),
                     stack.enter_context(orthanc(round_dir / "orthanc"))]
            expected = dict.fromkeys((p.label for p in peers), 0)
            for peer in peers:  # one untimed association: first-touch costs aside
                send(storescu, peer, [warm_up[round_number]], round_dir / "storescu.log")
                expected[peer.label] += 1
                _check(peer, expected[peer.label], "warm-up")
            for index, file_set in enumerate(sets.values()):
                first = (round_number + index) % 2
                for peer in peers[first:] + peers[:first]:
                    folders = [file_set.root] if file_set.mode == MODES[0] else file_set.parts
                    run = send(storescu, peer, folders, round_dir / "storescu.log")
                    expected[peer.label] += file_set.instances
                    run = _figures(peer, file_set, round_number, run, expected[peer.label])
                    print(f"[{peer.label}] round {round_number} {file_set.scenario}, "
                          f"{file_set.mode}: {run['instances_per_s']} instances/s, "
                          f"{run['mb_per_s']} MB/s, stored {run['stored']}/{run['instances']}",
                          file=sys.stderr, flush=True)
                    runs.append(run)
        shutil.rmtree(round_dir, ignore_errors=True)  # a full round stores about 2 GB
    return runs


def _figures(peer: Peer, file_set: FileSet, round_number: int, run: dict[str, Any],
             expected: int) -> dict[str, Any]:
    stored = peer.count() - (expected - file_set.instances)
    seconds = run["seconds"]
    return {
        "server": peer.label, "scenario": file_set.scenario, "mode": file_set.mode,
        "round": round_number, "instances": file_set.instances, "bytes": file_set.nbytes,
        "stored": stored,
        "ok": stored == file_set.instances and not any(run["storescu_exit_codes"]),
        "instances_per_s": round(file_set.instances / seconds, 1),
        "mb_per_s": round(file_set.nbytes / 1e6 / seconds, 1),
        "server_cpu_ms_per_instance": round(run["server_cpu_s"] * 1e3 / file_set.instances, 2),
        **run,
    }


def _check(peer: Peer, expected: int, what: str) -> None:
    if (found := peer.count()) != expected:
        raise RuntimeError(f"{peer.label} holds {found} instances after the {what}, "
                           f"not {expected}")


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per scenario and mode: each server's medians over the rounds, and ours/Orthanc."""
    summary: dict[str, dict[str, Any]] = {}
    for run in runs:
        row = summary.setdefault(f"{run['scenario']}, {run['mode']}", {})
        row.setdefault(run["server"], []).append(run)
    for row in summary.values():
        for server, taken in list(row.items()):
            row[server] = {figure: round(statistics.median(r[figure] for r in taken), 2)
                           for figure in ("instances_per_s", "mb_per_s", "server_cpu_s",
                                          "server_cpu_ms_per_instance", "storescu_cpu_s",
                                          *(("gateway_cpu_s",) if "gateway_cpu_s" in taken[0]
                                            else ()))}
            row[server]["rounds"] = len(taken)
            row[server]["all_stored"] = all(r["ok"] for r in taken)
        if "ours" in row and "orthanc" in row:
            row["ratio"] = round(row["ours"]["instances_per_s"]
                                 / row["orthanc"]["instances_per_s"], 2)
    return summary


def markdown(summary: dict[str, dict[str, Any]]) -> str:
    """The table: medians per server, the ratio, and server CPU per instance."""
    lines = ["| scenario, storescu | ours inst/s | Orthanc inst/s | ours/Orthanc | ours MB/s "
             "| Orthanc MB/s | server CPU ms/inst (ours/Orthanc) | all stored (ours/Orthanc) |",
             "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for key, row in summary.items():
        mine, theirs = row.get("ours", {}), row.get("orthanc", {})
        lines.append(
            f"| {key} | {mine.get('instances_per_s', '-')} | {theirs.get('instances_per_s', '-')}"
            f" | {row.get('ratio', '-')} | {mine.get('mb_per_s', '-')} "
            f"| {theirs.get('mb_per_s', '-')} | {mine.get('server_cpu_ms_per_instance', '-')}/"
            f"{theirs.get('server_cpu_ms_per_instance', '-')} "
            f"| {_yes(mine)}/{_yes(theirs)} |")
    return "\n".join(lines)


def _yes(figures: dict[str, Any]) -> str:
    return "yes" if figures.get("all_stored") else "NO"


def gateway_pids(parent: int) -> tuple[int, ...]:
    """The gateway's processes: the children of `pacs serve` started by multiprocessing's
    spawn."""
    with contextlib.suppress(OSError):
        return tuple(int(child) for child in
                     Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
                     if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes())
    return ()


def _cpu_s(pids: tuple[int, ...]) -> float:
    """User and system CPU seconds of the processes together."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (proc(5) 14, 15)
    return total * TICK_S


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _qido_count(base: str) -> int:
    """Instances in our archive, by QIDO pages of 1,000."""
    count = 0
    while True:
        page = _http(f"{base}/instances?limit=1000&offset={count}&includefield=00080018")
        found = len(json.loads(page)) if page else 0
        count += found
        if found < 1000:
            return count


def _http(url: str, data: bytes | None = None, method: str = "GET") -> bytes:
    request = urllib.request.Request(url, data, method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        body: bytes = response.read()
        return body


def _http_ok(url: str) -> bool:
    try:
        _http(url)
    except (urllib.error.URLError, OSError):
        return False
    return True


def _wait(ready: Callable[[], bool], alive: Callable[[], bool], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready():
        if not alive() or time.monotonic() > deadline:
            raise RuntimeError(f"server not ready within {READY_TIMEOUT_S:.0f} s; see {log}")
        time.sleep(0.2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dimse_store",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--files", type=int, help="instances per set (default: the size's)")
    parser.add_argument("--rounds", type=int, help="default: 3 at full size, 1 at smoke")
    parser.add_argument("--workers", type=int, default=2,
                        help="our workers (pacs serve --workers, whose gateway runs two "
                             "processes per worker; default 2)")
    parser.add_argument("--nagle", action="store_true",
                        help="leave dcmtk's default (Nagle on) instead of TCP_NODELAY=1")
    parser.add_argument("--out", type=Path, help="write the JSON document here too")
    args = parser.parse_args(argv)
    storescu = dcmtk_storescu()
    if storescu is None:
        print("dcmtk's storescu is missing: apt-get install dcmtk", file=sys.stderr)
        return 2
    if listening(ORTHANC_PORT):
        print(f"port {ORTHANC_PORT} is taken (another Orthanc?); stop it first", file=sys.stderr)
        return 2
    if not args.nagle:
        os.environ["TCP_NODELAY"] = "1"  # inherited by storescu and by Orthanc
    scenarios, default_rounds = SIZES[args.size]
    rounds = args.rounds or default_rounds
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="pacs-dimse-bench-") as tmp:
        work = Path(tmp)
        print("writing the files ...", file=sys.stderr, flush=True)
        sets, warm_up = generate(scenarios, args.files, rounds, work / "files")
        try:
            runs = measure(storescu, sets, warm_up, rounds, args.workers, work / "servers")
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"could not run: {exc}", file=sys.stderr)
            return 2
    summary = summarise(runs)
    document = {
        "size": args.size,
        "command": "python -m benchmarks.dimse_store " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "started_utc": started,
        "host": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "storescu": subprocess.run([storescu, "--version"], capture_output=True, text=True,
                                   check=False).stdout.splitlines()[0],
        "rounds": rounds,
        "tcp_nodelay": not args.nagle,
        "sets": {f"{s.scenario}, {s.mode}": {"instances": s.instances, "bytes": s.nbytes}
                 for s in sets.values()},
        "summary": summary,
        "runs": runs,
    }
    print(markdown(summary) + "\n")
    text = json.dumps(document, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0 if all(run["ok"] for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
