"""Load-test any DICOMweb base URL and print one JSON document of verified figures.

    python -m benchmarks.load --base-url URL [--label NAME] [--size smoke|full]
                              [--single-part-dicom] [--allow-unsupported] [--server-pid PID]
                              [--out results.json]

Each scenario reports the client's CPU time and, with `--server-pid`, the CPU time and peak
memory (RSS and PSS) of that process and all its children (uvicorn workers, say). Exits 1
when any request failed, any response did not verify, or (unless allowed) the server refused
a whole scenario as unsupported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.dataset import new_run_id
from benchmarks.dicomweb import DicomWebClient, StatusError, open_session
from benchmarks.resources import Usage
from benchmarks.scenarios import BURST_CONCURRENCY, CONNECTIONS, SIZES, Scenario, plan
from benchmarks.timing import Job, Tally, run_beside, run_pool, summarise


@dataclass(frozen=True)
class Target:
    """A server under test, and the process whose tree serves it, where known."""

    label: str
    base_url: str
    server_pid: int | None = None


async def run(
    targets: Sequence[Target], size_name: str, single_part_dicom: bool
) -> dict[str, dict[str, Any]]:
    """Run the plan against every target, interleaved by scenario; the first to go alternates."""
    run_id = new_run_id()
    reports = {t.label: _report(t, run_id) for t in targets}
    async with AsyncExitStack() as stack:
        clients = [
            DicomWebClient(await stack.enter_async_context(open_session(CONNECTIONS)), t.base_url)
            for t in targets
        ]
        pairs = list(zip(targets, clients, strict=True))
        for index, scenario in enumerate(plan(SIZES[size_name], single_part_dicom, run_id)):
            for target, client in pairs[::-1] if index % 2 else pairs:
                figures = await _measure(scenario, client, target.server_pid)
                reports[target.label]["scenarios"][scenario.name] = figures
                _progress(target.label, scenario.name, figures)
    for report in reports.values():
        for key in ("errors", "verification_failures"):
            report[key] = sum(s[key] for s in report["scenarios"].values())
        report["unsupported"] = [n for n, s in report["scenarios"].items() if "unsupported" in s]
    return reports


def failed(report: dict[str, Any], allow_unsupported: bool) -> bool:
    """Whether a target's report fails the run."""
    refused = report["unsupported"] and not allow_unsupported
    return bool(report["errors"] or report["verification_failures"] or refused)


async def _measure(
    scenario: Scenario, client: DicomWebClient, server_pid: int | None
) -> dict[str, Any]:
    """Probe or warm up, run the timed pool (with its burst, if any) while counting CPU and
    memory, then check what it deferred (untimed)."""
    jobs = scenario.jobs(client)
    probe: dict[str, Any] = {}
    if scenario.probe:
        start = time.perf_counter()
        try:
            await scenario.probe(client)()
            probe["probe_ms"] = round((time.perf_counter() - start) * 1000, 2)
        except StatusError as exc:
            return {
                "concurrency": scenario.concurrency,
                "requests": 0,
                "ok": 0,
                "unsupported": f"HTTP {exc.status}: {exc.detail}",
                "errors": 0,
                "verification_failures": 0,
            }
        except Exception as exc:  # a real failure shows again in the timed run
            probe["probe_error"] = f"{type(exc).__name__}: {exc}"
        client.check_deferred()  # the probe's own payload is not part of the figures
    elif scenario.warmup:
        await _warm_up(jobs[0])
        client.check_deferred()
    usage = Usage(server_pid)
    usage.start()
    if scenario.burst:
        tally, burst = await run_beside(jobs, scenario.burst(client), BURST_CONCURRENCY)
    else:
        tally, burst = await run_pool(jobs, scenario.concurrency), None
    resources = usage.stop()
    _fail_deferred(client, tally)
    figures = {**summarise(tally, scenario.concurrency, scenario.unit), **probe, **resources}
    return _with_burst(figures, burst) if burst else figures


def _with_burst(figures: dict[str, Any], burst: Tally) -> dict[str, Any]:
    """Add the burst's figures under `burst`, and its failures to the scenario's: a request of
    the burst that fails fails the scenario."""
    summary = summarise(burst, BURST_CONCURRENCY, "frames")
    for key in ("errors", "verification_failures"):
        figures[key] += summary[key]
    samples = figures.get("failure_samples", []) + summary.get("failure_samples", [])
    if samples:
        figures["failure_samples"] = samples
    return {**figures, "burst": summary}


def _fail_deferred(client: DicomWebClient, tally: Tally) -> None:
    """Move the results whose payload failed its deferred check to the failures."""
    for result, reason in client.check_deferred():
        tally.results.remove(result)  # equal results are interchangeable in the figures
        tally.failures.append(reason)


def environment(size_name: str, single_part_dicom: bool) -> dict[str, Any]:
    """Context that belongs with any set of figures."""
    return {
        "size": size_name,
        "single_part_dicom": single_part_dicom,
        "started_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }


def _report(target: Target, run_id: str) -> dict[str, Any]:
    return {"label": target.label, "base_url": target.base_url, "run_id": run_id, "scenarios": {}}


async def _warm_up(job: Job) -> None:
    """One untimed request, so connection set-up and first-touch caches are not measured."""
    with contextlib.suppress(Exception):  # a real failure shows again in the timed run
        await job()


def _progress(label: str, scenario: str, figures: dict[str, Any]) -> None:
    shown = {
        k: v
        for k, v in figures.items()
        if k.endswith(
            ("_per_s", "_ms", "cpu_s", "_mb", "failures", "errors", "_error", "unsupported")
        )
    }
    print(f"[{label}] {scenario}: {shown}", file=sys.stderr, flush=True)


def write(document: dict[str, Any], out: Path | None) -> None:
    """Print the JSON document, and also save it when `out` is given."""
    text = json.dumps(document, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__)
    parser.add_argument("--base-url", required=True, help="DICOMweb root, e.g. .../dicom-web")
    parser.add_argument("--label", default="target")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument(
        "--single-part-dicom",
        action="store_true",
        help="single-instance STOW sends bare application/dicom instead of multipart/related",
    )
    parser.add_argument(
        "--allow-unsupported",
        action="store_true",
        help="a scenario the server refuses outright (e.g. a transfer syntax it cannot "
        "transcode to) does not fail the run",
    )
    parser.add_argument(
        "--server-pid",
        type=int,
        help="also report the CPU time and peak memory of this process and its children",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON document here")
    args = parser.parse_args(argv)
    target = Target(args.label, args.base_url, args.server_pid)
    reports = asyncio.run(run([target], args.size, args.single_part_dicom))
    report = reports[target.label]
    write({**environment(args.size, args.single_part_dicom), **report}, args.out)
    return 1 if failed(report, args.allow_unsupported) else 0


if __name__ == "__main__":
    sys.exit(main())
