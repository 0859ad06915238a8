"""A chart of our figures over Orthanc's, from the JSON document of `benchmarks.compare`.

    python -m benchmarks.plot results.json out.png

One bar per scenario for its headline figure (the first of its figures in `compare`'s
table), drawn from 1x on a log axis, so a bar to the right means ours is better; the ratio
ends the bar's label, and a diamond marks the ratio that issue 12 asks for, where it sets one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

# Issue 12's targets, as ratios of headline figures (> 1: ours better; latencies inverted).
TARGETS = {
    "stow_single_c16": 2.5,  # STOW CT instances/s at c16
    "stow_small_single_c16": 2.0,  # STOW small instances/s at c16
    "qido_studies_by_patient_name": 3.0,  # QIDO studies: at most 1/3 of the latency
    "qido_studies_by_uid": 3.0,
    "qido_instances_in_series": 10.0,  # QIDO instances: at most 1/10
    "metadata_series": 25.0,  # series metadata: at most 1/25
    "retrieve_series_c1": 1.3,  # whole-series retrieve MB/s
    "retrieve_series_c4": 1.3,
    "retrieve_series_c50": 1.3,
    "frames_c16": 3.0,  # frames/s at c16
    "rendered_jpeg_c16": 2.0,  # rendered JPEG frames/s at c16
}
BETTER, WORSE, TARGET = "#2a7ab0", "#d0603a", "black"
BAR_HEIGHT_IN = 0.28
AXIS_MAX = 100.0  # a longer bar (a search stalled behind a burst, say) is cut


def headlines(document: dict[str, Any]) -> list[tuple[str, str, float | None, str]]:
    """(scenario, figure, ratio, why there is none) for each scenario of the ratio table."""
    rows = []
    for name, figures in document["ratios"].items():
        figure, value = next(iter(figures.items()))
        rows.append((name, figure, value, "" if value else _missing(document, name)))
    return rows


def _missing(document: dict[str, Any], name: str) -> str:
    """Why a scenario has no ratio: a side refused it or had a request fail."""
    for label, key in (("Orthanc", "orthanc"), ("ours", "ours")):
        figures = document["targets"][key]["scenarios"].get(name, {})
        if "unsupported" in figures:
            return f"unsupported by {label}"
        if figures.get("errors") or figures.get("verification_failures"):
            return f"requests failed on {label}"
    return "no figure"


def plot(document: dict[str, Any], out: Path) -> None:
    """Write the chart of `document` to `out` as PNG."""
    rows = headlines(document)[::-1]  # first scenario on top
    known = [r for _, _, r, _ in rows if r] + [TARGETS.get(n, 1.0) for n, *_ in rows]
    low, high = min(known + [1.0]) / 2, min(max(known + [1.0]) * 2, AXIS_MAX)
    figure = Figure(figsize=(9, 1.4 + BAR_HEIGHT_IN * len(rows)), layout="constrained")
    axes = figure.subplots()
    axes.set_xscale("log")
    axes.set_xlim(low, high)
    for y, (name, _, value, why) in enumerate(rows):
        if value:
            colour = BETTER if value >= 1 else WORSE
            axes.barh(y, min(value, high) - 1, left=1, height=0.7, color=colour)
            if value > high:
                axes.text(high, y, "cut ", va="center", ha="right", fontsize=8, color="white")
        else:
            axes.text(1, y, f" n/a: {why}", va="center", fontsize=8, color="grey")
        if name in TARGETS:
            axes.plot(TARGETS[name], y, "D", color=TARGET, markerfacecolor="none", markersize=6)
    axes.plot(
        [], [], "D", color=TARGET, markerfacecolor="none", markersize=6, label="issue 12 target"
    )
    axes.axvline(1, color="black", linewidth=0.8)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    labels = [f"{name} ({figure}) {_ratio(value)}" for name, figure, value, _ in rows]
    axes.set_yticks(range(len(rows)), labels, fontsize=8, fontfamily="monospace")
    axes.set_ylim(-0.7, len(rows) - 0.3)
    axes.set_xlabel("ours / Orthanc (> 1: ours better; latencies as Orthanc / ours)")
    axes.set_title(
        f"Ours versus Orthanc, size {document['size']}, {document['started_utc']}", fontsize=10
    )
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(axis="x", which="both", alpha=0.3)
    figure.savefig(out, dpi=120)


def _ratio(value: float | None) -> str:
    return f"{value:7.2f}x" if value else "     n/a"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plot", description=__doc__)
    parser.add_argument("results", type=Path, help="JSON written by benchmarks.compare --out")
    parser.add_argument("out", type=Path, help="PNG to write")
    args = parser.parse_args(argv)
    plot(json.loads(args.results.read_text()), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
