"""Benchmark our server against Orthanc in one run, interleaved by scenario.

    python -m benchmarks.compare [--size full|smoke] [--out results.json] [--plot chart.png]

Prints a markdown table of ours/Orthanc ratios (> 1 means ours is better: orthanc/ours for
latencies, ours/orthanc for throughputs), with each side's CPU time and peak memory per scenario,
then the raw JSON; writes the JSON and a chart of the ratios (`benchmarks.plot`). Exits 1 on
any failed request, or if ours refuses a scenario; Orthanc refusing one (it cannot transcode
to HTJ2K) is shown.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks.load import Target, environment, failed, run, write
from benchmarks.plot import TARGETS, plot
from benchmarks.scenarios import SIZES
from benchmarks.servers import ORTHANC_TOOLS, REPO, orthanc_server, pacs_server

RESULTS = REPO / "benchmarks" / "results"

# Figures in the table, by scenario-name prefix; the rest stay in the raw JSON.
TABLE_FIGURES = {
    "stow": ("instances_per_s", "requests_per_s", "p50_ms", "p95_ms"),
    "qido": ("p50_ms", "p95_ms"),
    "metadata": ("p50_ms", "p95_ms"),
    "retrieve": ("mb_per_s",),
    "frames": ("frames_per_s", "p50_ms", "p95_ms"),
    "rendered": ("frames_per_s", "p50_ms", "p95_ms"),
}


def ratio(figure: str, ours: float | None, orthanc: float | None) -> float | None:
    """> 1 when ours is better: orthanc/ours for latencies (`_ms`), ours/orthanc otherwise."""
    if not ours or not orthanc:
        return None
    return orthanc / ours if figure.endswith("_ms") else ours / orthanc


def ratios(ours: dict[str, Any], orthanc: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Ratio of every table figure, per scenario; none where either side had a request fail
    (its rates then count only what succeeded, over a wall time that includes the rest)."""
    table: dict[str, dict[str, float | None]] = {}
    for name, figures in ours["scenarios"].items():
        wanted = TABLE_FIGURES.get(name.split("_")[0], ())
        theirs = orthanc["scenarios"].get(name, {})
        if _failed(figures) or _failed(theirs):
            table[name] = dict.fromkeys(wanted)
        else:
            table[name] = {f: ratio(f, figures.get(f), theirs.get(f)) for f in wanted}
    return {name: row for name, row in table.items() if row}


# Per-scenario resource columns: (heading, figure), each shown as ours/Orthanc.
RESOURCES = (
    ("server CPU s", "server_cpu_s"),
    ("client CPU s", "client_cpu_s"),
    ("server RSS peak MiB", "server_rss_peak_mb"),
    ("server PSS peak MiB", "server_pss_peak_mb"),
)


def markdown(ours: dict[str, Any], orthanc: dict[str, Any]) -> str:
    """The ratio table, with both raw figures, the target ratio, each side's failed-request
    count and, on a scenario's first row, both sides' CPU time and peak memory."""
    headings = " | ".join(f"{h} (ours/Orthanc)" for h, _ in RESOURCES)
    lines = [
        f"| scenario | figure | ours | Orthanc | ratio | target | failed (ours/Orthanc) "
        f"| {headings} |",
        "|---|---|--:|--:|--:|--:|--:|" + "--:|" * len(RESOURCES),
    ]
    known, blank = [], [""] * len(RESOURCES)
    for name, row in ratios(ours, orthanc).items():
        mine, theirs = ours["scenarios"][name], orthanc["scenarios"].get(name, {})
        failed = f"{_failed(mine)}/{_failed(theirs)}"
        resources = [f"{_cell(mine, f)}/{_cell(theirs, f)}" for _, f in RESOURCES]
        for index, (figure, value) in enumerate(row.items()):
            shown = "n/a" if value is None else f"{value:.2f}"
            shown += "" if value is not None or failed == "0/0" else " (failed)"
            target = f"{TARGETS[name]:g}" if name in TARGETS and index == 0 else ""
            lines.append(
                f"| {name} | {figure} | {_cell(mine, figure)} | {_cell(theirs, figure)} "
                f"| {shown} | {target} | {failed} | {' | '.join(blank if index else resources)} |"
            )
            if value is not None:
                known.append(value)
    if known:
        mean = math.exp(sum(math.log(v) for v in known) / len(known))
        lines.append(f"\nGeometric mean of {len(known)} ratios: {mean:.2f}")
    for heading, figure in (r for r in RESOURCES if r[1].endswith("_peak_mb")):
        peaks = [_peak(report, figure) for report in (ours, orthanc)]
        lines.append(f"\n{heading} over the run: ours {peaks[0]}, Orthanc {peaks[1]}")
    for label, report in (("ours", ours), ("Orthanc", orthanc)):
        refused: dict[str, list[str]] = {}
        for name, figures in report["scenarios"].items():
            if "unsupported" in figures:
                refused.setdefault(figures["unsupported"], []).append(name)
        for reason, names in refused.items():
            lines.append(f"\n{label} refused {', '.join(names)} at the probe: {reason}")
    return "\n".join(lines)


def _cell(figures: dict[str, Any], figure: str) -> Any:
    return "unsupported" if "unsupported" in figures else figures.get(figure, "-")


def _peak(report: dict[str, Any], figure: str) -> float:
    return max(float(s.get(figure, 0.0)) for s in report["scenarios"].values())


def _failed(figures: dict[str, Any]) -> int:
    return int(figures.get("errors", 0) + figures.get("verification_failures", 0))


def _measure(size_name: str, orthanc_tools: Path) -> dict[str, dict[str, Any]]:
    """Start both servers on fresh data directories, run the plan, stop them."""
    with tempfile.TemporaryDirectory(prefix="pacs-bench-") as tmp, ExitStack() as servers:
        work = Path(tmp)
        ours = servers.enter_context(pacs_server(work / "pacs-data", work / "pacs.log"))
        orthanc = servers.enter_context(orthanc_server(work / "orthanc", orthanc_tools))
        targets = [Target("ours", ours.url, ours.pid), Target("orthanc", orthanc.url, orthanc.pid)]
        return asyncio.run(run(targets, size_name, single_part_dicom=False))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "compare.json",
        help="write the JSON document here (default: %(default)s)",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=RESULTS / "compare.png",
        help="write the chart of the ratios here (default: %(default)s)",
    )
    parser.add_argument("--orthanc-tools", type=Path, default=ORTHANC_TOOLS)
    args = parser.parse_args(argv)
    try:
        reports = _measure(args.size, args.orthanc_tools)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"could not start a server: {exc}", file=sys.stderr)
        return 2
    ours, orthanc = reports["ours"], reports["orthanc"]
    print(markdown(ours, orthanc) + "\n")
    document = {
        **environment(args.size, single_part_dicom=False),
        "ratios": ratios(ours, orthanc),
        "targets": reports,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write(document, args.out)
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    plot(document, args.plot)
    return 1 if failed(ours, False) or failed(orthanc, True) else 0


if __name__ == "__main__":
    sys.exit(main())
