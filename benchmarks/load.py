"""Load-test any DICOMweb base URL and print one JSON document of verified figures.

    python -m benchmarks.load --base-url URL [--label NAME] [--size smoke|full]
                              [--single-part-dicom] [--out results.json]

Exits 1 when any request failed or any response did not verify.
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
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.dataset import new_run_id
from benchmarks.dicomweb import DicomWebClient, open_session
from benchmarks.scenarios import SIZES, STOW_CONCURRENCY, plan
from benchmarks.timing import Job, run_pool, summarise

MAX_CONNECTIONS = max(STOW_CONCURRENCY)


@dataclass(frozen=True)
class Target:
    """A server under test."""

    label: str
    base_url: str


async def run(
    targets: Sequence[Target], size_name: str, single_part_dicom: bool
) -> dict[str, dict[str, Any]]:
    """Run the plan against every target, interleaved by scenario; the first to go alternates."""
    run_id = new_run_id()
    reports = {t.label: _report(t, run_id) for t in targets}
    async with AsyncExitStack() as stack:
        clients = [
            DicomWebClient(
                await stack.enter_async_context(open_session(MAX_CONNECTIONS)), t.base_url
            )
            for t in targets
        ]
        pairs = list(zip(targets, clients, strict=True))
        for index, scenario in enumerate(plan(SIZES[size_name], single_part_dicom, run_id)):
            for target, client in pairs[::-1] if index % 2 else pairs:
                jobs = scenario.jobs(client)
                if scenario.warmup:
                    await _warm_up(jobs[0])
                tally = await run_pool(jobs, scenario.concurrency)
                figures = summarise(tally, scenario.concurrency, scenario.unit)
                reports[target.label]["scenarios"][scenario.name] = figures
                _progress(target.label, scenario.name, figures)
    for report in reports.values():
        for key in ("errors", "verification_failures"):
            report[key] = sum(s[key] for s in report["scenarios"].values())
    return reports


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
        k: v for k, v in figures.items() if k.endswith(("_per_s", "_ms", "failures", "errors"))
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
    parser.add_argument("--out", type=Path, help="also write the JSON document here")
    args = parser.parse_args(argv)
    target = Target(args.label, args.base_url)
    reports = asyncio.run(run([target], args.size, args.single_part_dicom))
    report = reports[target.label]
    write({**environment(args.size, args.single_part_dicom), **report}, args.out)
    return 1 if report["errors"] or report["verification_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
