"""Scale benchmark: is the archive as fast at a million instances as when empty?

    python -m benchmarks.scale --instances N [--checkpoints A,B,...] --data DIR
                               [--index URL [--no-fill]] [--out results.json]
                               [--repeats 30] [--processes 2]

Fills DIR through the server's own ingest code (`benchmarks.scale_data`), continuing whatever
a previous run left there, up to each checkpoint in turn. At each checkpoint it starts
`python -m pacs serve` on DIR and measures the time to ready, OHIF's searches and metadata
requests at concurrency 1 (p50/p95 over random studies), and the rate of HTTP STOW; a fresh
empty archive gives the baseline. With --no-fill it loads nothing and measures the index as
it stands (`benchmarks.bulk_load` fills a PostgreSQL index far faster). Progress goes to
stderr; a markdown table and then the JSON document go to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import yarl
from pydicom.uid import generate_uid

from benchmarks.dataset import Instance
from benchmarks.dicomweb import DICOM_JSON, DicomWebClient, open_session, stow_request
from benchmarks.scale_data import (
    STUDY_SIZE,
    StudyPlan,
    load,
    loaded_counts,
    planned_instances,
    sop_uid,
    study_counts,
    study_plan,
)
from benchmarks.servers import stop
from benchmarks.timing import percentile, run_pool, summarise
from storage.backends import Placement

REPO = Path(__file__).resolve().parents[1]
DEEP_OFFSET = 500_000  # or half the archive, when it holds fewer than a million
READY_POLL_S = 0.01
READY_TIMEOUT_S = 120.0
SETTLE_WINDOW_S = 0.5  # the server counts as settled after two windows of under 10 % CPU
SETTLE_TIMEOUT_S = 900.0
STOW_CONCURRENCY = 16
MIN_REPEATS = 5  # timed requests made even past the time budget
# OHIF v3's study list (../shared/specs/ohif-as-client.md): its paging and the fields it shows.
OHIF_LIST = {
    "limit": "101",
    "offset": "0",
    "fuzzymatching": "false",
    "includefield": "00081030,00080060,00080090,00100030",
}


def requests_for(study: StudyPlan, deep_offset: int) -> dict[str, tuple[str, dict[str, str]]]:
    """Every measured request, for one randomly picked study: name -> (path, parameters)."""
    s, se = study.uid, study.series[0].uid  # the first series holds 55 instances
    return {
        "studies_ohif_list": ("/studies", OHIF_LIST),
        "studies_ohif_patient_name_smi": ("/studies", {"PatientName": "*smi*", **OHIF_LIST}),
        "studies_ohif_modality_mr": ("/studies", {"ModalitiesInStudy": "MR", **OHIF_LIST}),
        "studies_ohif_accession": (
            "/studies",
            {"AccessionNumber": f"*{study.accession[-4:]}*", **OHIF_LIST},
        ),
        "studies_ohif_description": (
            "/studies",
            {"StudyDescription": f"*{_word(study)}*", **OHIF_LIST},
        ),
        "series_of_study": (f"/studies/{s}/series", {}),
        "instances_of_series_55": (f"/studies/{s}/series/{se}/instances", {}),
        "instances_by_patient_id": ("/instances", {"limit": "100", "PatientID": study.patient_id}),
        "series_metadata_55": (f"/studies/{s}/series/{se}/metadata", {}),
        "instances_deep_offset": ("/instances", {"limit": "100", "offset": str(deep_offset)}),
        # OHIF opening a study: the study again, its series, the patient's other studies, and
        # the series list of an expanded row; then each series' metadata (as above).
        "ohif_open_study": ("/studies", {**OHIF_LIST, "StudyInstanceUID": s}),
        "ohif_open_series": (
            f"/studies/{s}/series",
            {"includefield": "00080021,00080031,0008103E,00200011"},
        ),
        "ohif_patient_studies": ("/studies", {"00100020": study.patient_id, **OHIF_LIST}),
        "ohif_row_series": (f"/studies/{s}/series", {"includefield": "0008103E,00080021"}),
        "study_metadata_125": (f"/studies/{s}/metadata", {}),
    }


def _word(study: StudyPlan) -> str:
    """What a user types to find a study by its description ("chest", "knee"...)."""
    return study.description.split()[1].lower()


def template(study: StudyPlan, path: str, params: dict[str, str]) -> str:
    """The request with the picked study's values and the deep offset named, and OHIF's list
    parameters left out."""
    names = {
        study.uid: "{study}",
        study.series[0].uid: "{series}",
        study.patient_id: "{PatientID}",
        f"*{study.accession[-4:]}*": "*{4 digits}*",
        f"*{_word(study)}*": "*{word}*",
    }
    shown = {
        k: "{deep}" if k == "offset" else names.get(v, v)
        for k, v in params.items()
        if OHIF_LIST.get(k) != v
    }
    for value, name in names.items():
        path = path.replace(value, name)
    return "?".join(filter(None, [path, "&".join(f"{k}={v}" for k, v in shown.items())]))


@dataclass(frozen=True)
class Started:
    """A running `pacs serve`: its DICOMweb base URL, when it was spawned (perf_counter) and
    its start-up times."""

    base_url: str
    spawned: float
    ready: dict[str, float | None]

    def since_spawn(self) -> float:
        return round(time.perf_counter() - self.spawned, 3)


@contextmanager
def pacs_serve(where: Placement, log_path: Path) -> Iterator[Started]:
    """`python -m pacs serve` on DIR, timed from spawn to /healthz 200, to the first answer
    of /studies?limit=1, and until its processes go idle. `servers.pacs_server` polls
    /healthz every 0.2 s: too coarse to time this."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "pacs",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data",
        str(where.data_dir),
        *(["--index", where.index_url] if where.index_url else []),
        *(["--blobs", where.blobs_url] if where.blobs_url else []),
    ]
    start = time.perf_counter()
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        healthy = _poll(f"{root}/healthz", process, start)
        first = _poll(f"{root}/dicomweb/studies?limit=1", process, start)
        settled = _settle(process.pid, start)
        yield Started(
            f"{root}/dicomweb",
            start,
            {"healthz_s": healthy, "first_search_s": first, "settled_s": settled},
        )
    finally:
        stop(process, 60)


def _poll(url: str, process: subprocess.Popen[bytes], start: float) -> float:
    """Seconds from `start` to the first 2xx answer of `url`."""
    while time.perf_counter() - start < READY_TIMEOUT_S:
        if process.poll() is not None:
            raise RuntimeError(f"pacs serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if 200 <= response.status < 300:
                    return round(time.perf_counter() - start, 3)
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(READY_POLL_S)
    raise RuntimeError(f"{url} did not answer within {READY_TIMEOUT_S:.0f} s")


def _settle(pid: int, start: float) -> float | None:
    """Seconds from `start` until the server's processes use under 10 % of a core for two
    windows running (None where /proc cannot tell)."""
    quiet = 0
    try:
        while time.perf_counter() - start < SETTLE_TIMEOUT_S:
            before = _cpu_seconds(pid)
            time.sleep(SETTLE_WINDOW_S)
            quiet = quiet + 1 if _cpu_seconds(pid) - before < 0.1 * SETTLE_WINDOW_S else 0
            if quiet == 2:
                return round(time.perf_counter() - start - 2 * SETTLE_WINDOW_S, 3)
    except OSError:
        return None
    return None


def _cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and its child processes (Linux /proc)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sampling:
    """How often each request is made: `warmup` untimed, then `repeats` timed, though no more
    than `budget_s` is spent on one request once `MIN_REPEATS` are timed."""

    repeats: int
    warmup: int
    budget_s: float


async def measure_requests(
    base_url: str,
    studies: list[StudyPlan],
    deep_offset: int,
    sampling: Sampling,
    rng: random.Random,
) -> dict[str, Any]:
    """Each request of `requests_for`, one at a time, each time for another random study.
    Any status is an outcome; how often each came is recorded."""
    figures: dict[str, Any] = {}
    async with open_session(1) as session:
        for name in requests_for(studies[0], deep_offset):
            latencies: list[float] = []
            counts: list[int] = []
            statuses: dict[str, int] = {}
            began = time.perf_counter()
            for round_ in range(sampling.warmup + sampling.repeats):
                study = rng.choice(studies)
                path, params = requests_for(study, deep_offset)[name]
                query = urlencode(params, safe="*^")
                url = yarl.URL(f"{base_url}{path}?{query}".rstrip("?"), encoded=True)
                start = time.perf_counter()
                async with session.get(url, headers={"Accept": DICOM_JSON}) as response:
                    body = await response.read()
                elapsed = time.perf_counter() - start
                if round_ >= sampling.warmup:
                    latencies.append(elapsed * 1000)
                    statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
                    document = orjson.loads(body) if response.status == 200 else []
                    counts.append(len(document) if isinstance(document, list) else 0)
                over = time.perf_counter() - began > sampling.budget_s
                if over and len(latencies) >= min(MIN_REPEATS, sampling.repeats):
                    break
            figures[name] = {
                "request": template(study, path, params),
                "ohif_list": OHIF_LIST.items() <= params.items(),
                "status": statuses,
                "repeats": len(latencies),
                "p50_ms": round(percentile(latencies, 0.50), 2),
                "p95_ms": round(percentile(latencies, 0.95), 2),
                "max_ms": round(max(latencies), 2),
                "results_min": min(counts),
                "results_max": max(counts),
            }
            print(
                f"    {name}: p50 {figures[name]['p50_ms']} ms, p95 "
                f"{figures[name]['p95_ms']} ms, status {statuses}",
                file=sys.stderr,
                flush=True,
            )
    return figures


async def measure_stow(base_url: str, count: int) -> dict[str, Any]:
    """HTTP STOW of `count` small new instances (single-part, c16) in studies of 100, then
    (untimed) their deletion, so the archive keeps only what the loader put there."""
    plans = [study_plan(k, generate_uid()) for k in range(-(-count // 100))]
    bodies = [
        stow_request(
            [
                Instance(
                    plan.uid, series.uid, sop_uid(plan, series, number), encoder.encode(number), b""
                )
            ],
            single_part=True,
        )
        for plan, want in zip(plans, _hundreds(count), strict=True)
        for encoder, number in planned_instances(plan, want)
        for series in [encoder.series]
    ]
    async with open_session(STOW_CONCURRENCY) as session:
        client = DicomWebClient(session, base_url)
        tally = await run_pool([partial(client.store, body) for body in bodies], STOW_CONCURRENCY)
        for plan in plans:
            async with session.delete(f"{base_url}/studies/{plan.uid}") as response:
                if response.status >= 300:
                    raise RuntimeError(f"DELETE of a STOW study: HTTP {response.status}")
    figures = summarise(tally, STOW_CONCURRENCY, "instances")
    print(
        f"    STOW: {figures.get('instances_per_s')} instances/s, "
        f"{figures['errors'] + figures['verification_failures']} failed",
        file=sys.stderr,
    )
    return figures


def _hundreds(count: int) -> list[int]:
    return [min(100, count - start) for start in range(0, count, 100)]


def _count(text: str) -> int:
    return int(text.replace("_", "").replace(",", ""))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    parser.add_argument(
        "--instances", type=_count, required=True, help="instances the archive holds at the end"
    )
    parser.add_argument(
        "--checkpoints",
        type=lambda t: [_count(v) for v in t.split(",")],
        default=[],
        help="comma-separated sizes to measure at (default: the end)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="the archive to fill (continued if a previous run filled part)",
    )
    parser.add_argument("--index", default="", metavar="URL",
                        help="fill a PostgreSQL index (postgresql://…) instead of the data "
                             "directory's SQLite; the empty baseline stays embedded")
    parser.add_argument("--no-fill", action="store_true",
                        help="measure the index as it stands, at --instances, loading nothing "
                             "(one filled by python -m benchmarks.bulk_load, say)")
    parser.add_argument("--blobs", default="", metavar="URL",
                        help="keep the blobs in s3://BUCKET/PREFIX instead (AWS_* variables)")
    parser.add_argument("--out", type=Path, help="write the JSON document here too")
    parser.add_argument("--repeats", type=int, default=30, help="timed requests per query")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests per query")
    parser.add_argument(
        "--budget",
        type=float,
        default=60.0,
        help=f"seconds per query, after which it stops once {MIN_REPEATS} requests are timed",
    )
    parser.add_argument(
        "--stow-instances",
        type=int,
        default=1000,
        help="new instances sent by HTTP STOW (a 300-instance run varied by 15 %% here)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="loader processes (default: one per core)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=16, help="stores in flight in each loader process"
    )
    parser.add_argument(
        "--loader-nice",
        type=int,
        default=10,
        help="niceness of the loader processes (measurements run at yours)",
    )
    parser.add_argument("--seed", type=int, default=1, help="of the random study picks")
    args = parser.parse_args(argv)
    args.checkpoints = sorted({*args.checkpoints, args.instances})
    args.placement = Placement(args.data, args.index, args.blobs)
    if args.checkpoints[0] < STUDY_SIZE or args.checkpoints[-1] > args.instances:
        parser.error(f"checkpoints must lie between {STUDY_SIZE} and --instances")
    if args.no_fill and len(args.checkpoints) > 1:
        parser.error("--no-fill measures at --instances only: no --checkpoints")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark: the empty baseline, then each checkpoint in turn."""
    logs = Path(tempfile.mkdtemp(prefix="pacs-scale-logs-"))
    plans = [study_plan(index) for index in range(len(study_counts(args.instances)))]
    rng = random.Random(args.seed)
    document: dict[str, Any] = {
        "benchmark": "scale",
        "started_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "loader": {
            "method": "in-process ingest, no HTTP: pydicom-encoded instances staged "
            "with pacs.service.staging.stage_all and stored with "
            "pacs.service.store_instances.store_staged (blob fsync'd, then "
            "the index row) on an Archive opened by open_archive",
            "processes": args.processes,
            "concurrency_per_process": args.concurrency,
            "nice": args.loader_nice,
            "instances_per_study": STUDY_SIZE,
            "no_fill": args.no_fill,
        },
        "requests": {
            "repeats": args.repeats,
            "warmup": args.warmup,
            "budget_s_per_query": args.budget,
            "concurrency": 1,
            "stow_instances": args.stow_instances,
            "stow_concurrency": STOW_CONCURRENCY,
        },
        "commit": _commit(),
        "data": str(args.data.resolve()),
        "logs": str(logs),
        "checkpoints": [],
    }
    print(f"server logs in {logs}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="pacs-scale-empty-") as empty:
        print("empty archive:", file=sys.stderr)
        with pacs_serve(Placement(Path(empty)), logs / "server-empty.log") as server:
            stow = asyncio.run(measure_stow(server.base_url, args.stow_instances))
        document["empty"] = {"ready": server.ready, "stow": stow}
    for checkpoint in args.checkpoints:
        work = [] if args.no_fill else missing(args.placement, checkpoint, plans)
        if work is None:
            continue
        loaded = load(
            args.placement,
            work,
            args.processes,
            args.concurrency,
            args.loader_nice,
            max(1000, checkpoint // 50),
        )
        figures = measure(args, checkpoint, plans, logs, rng)
        figures["load"] = {
            "instances": loaded.instances,
            "seconds": round(loaded.seconds),
            "instances_per_s": round(loaded.rate, 1) if loaded.instances else None,
            "locked_retries": loaded.locked_retries,
        }
        document["checkpoints"].append(figures)
        write(document, args.out)  # so far: a later failure keeps what was measured
    return document


def missing(
    where: Placement, checkpoint: int, plans: list[StudyPlan]
) -> list[tuple[int, int]] | None:
    """What to load for the archive to hold `checkpoint` instances: (study, instances) to
    reach; None if it holds more already."""
    have = loaded_counts(where)
    held = sum(min(have.get(p.uid, 0), STUDY_SIZE) for p in plans)
    if held > checkpoint:
        print(f"skipping {checkpoint:,}: the archive already holds {held:,}", file=sys.stderr)
        return None
    work = [
        (index, want)
        for index, want in enumerate(study_counts(checkpoint))
        if have.get(plans[index].uid, 0) < want
    ]
    print(
        f"checkpoint {checkpoint:,}: loading {sum(w for _, w in work):,} instances "
        f"({held:,} held)",
        file=sys.stderr,
        flush=True,
    )
    return work


def write(document: dict[str, Any], out: Path | None) -> None:
    """Write the JSON document to `out`, if given."""
    if out is not None:
        out.write_text(json.dumps(document, indent=2) + "\n")


def _commit() -> str:
    """The server's commit, marked `+changes` if pacs/ or storage/ differ from it."""
    git = ["git", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    changed = subprocess.run(
        [*git, "status", "--porcelain", "pacs", "storage"], capture_output=True, text=True
    )
    return head.stdout.strip() + ("+changes" if changed.stdout.strip() else "")


def measure(
    args: argparse.Namespace,
    checkpoint: int,
    plans: list[StudyPlan],
    logs: Path,
    rng: random.Random,
) -> dict[str, Any]:
    """Start the server on the archive at `checkpoint` instances and measure it."""
    whole = plans[: checkpoint // STUDY_SIZE]  # studies with every series complete
    deep_offset = min(DEEP_OFFSET, checkpoint // 2)
    load_average = [os.getloadavg()[0]]  # the machine's other work, which the figures share
    with pacs_serve(args.placement, logs / f"server-{checkpoint}.log") as server:
        print(f"  ready: {server.ready}", file=sys.stderr, flush=True)
        # STOW first: both are done before the server's first cleanup sweep (a minute after
        # start, see Settings.cleanup_delay_seconds) unless the budget runs long.
        timeline = {"stow_from_s": server.since_spawn()}
        stow = asyncio.run(measure_stow(server.base_url, args.stow_instances))
        timeline["queries_from_s"] = server.since_spawn()
        queries = asyncio.run(
            measure_requests(
                server.base_url,
                whole,
                deep_offset,
                Sampling(args.repeats, args.warmup, args.budget),
                rng,
            )
        )
        timeline["done_s"] = server.since_spawn()
    load_average.append(os.getloadavg()[0])
    return {
        "instances": checkpoint,
        "studies": len(whole),
        "deep_offset": deep_offset,
        "load_average_1m": load_average,
        "ready": server.ready,
        "timeline": timeline,
        "queries": queries,
        "stow": stow,
    }


def table(document: dict[str, Any]) -> str:
    """Markdown: a row per request and for ready time, load and STOW rates; a column for the
    empty archive and for each checkpoint."""
    points = document["checkpoints"]
    head = ["", "empty", *(f"{p['instances']:,}" for p in points)]
    rows = [head, ["---"] + ["--:"] * (len(head) - 1)]
    for name, query in (points[-1]["queries"] if points else {}).items():
        cells = [_cell(p["queries"][name], document["requests"]["repeats"]) for p in points]
        label = f"`{query['request']}`" + (" (OHIF list)" if query["ohif_list"] else "")
        rows.append([label, "", *cells])
    for key, label in (
        ("healthz_s", "ready: /healthz (s)"),
        ("first_search_s", "ready: first /studies (s)"),
        ("settled_s", "settled: server idle (s)"),
    ):
        rows.append([label, *(str(p["ready"][key]) for p in [document["empty"], *points])])
    rows.append(["`{deep}` offset", "", *(f"{p['deep_offset']:,}" for p in points)])
    rows.append(
        ["loader (instances/s)", "", *(str(p["load"]["instances_per_s"] or "-") for p in points)]
    )
    rows.append(
        [
            f"HTTP STOW c{STOW_CONCURRENCY} (instances/s)",
            *(str(p["stow"].get("instances_per_s")) for p in [document["empty"], *points]),
        ]
    )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _cell(figures: dict[str, Any], repeats: int) -> str:
    """p50 / p95, noting any status but 200 and a repeat count the budget cut short."""
    notes = [s for s in figures["status"] if s != "200"]
    notes += [f"n={figures['repeats']}"] if figures["repeats"] < repeats else []
    text = f"{figures['p50_ms']} / {figures['p95_ms']}"
    return f"{text} ({', '.join(notes)})" if notes else text


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    document = run(args)
    write(document, args.out)
    print(table(document))
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
