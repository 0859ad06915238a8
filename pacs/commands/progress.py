"""What the file commands (`pacs import`, `pacs export`) show as they work and when they are
done: a progress bar on stderr over files and bytes (none with --quiet), then each failure
on a line of its own and one summary line. Exit code 0 when nothing failed, 1 otherwise."""

import sys
import time
from collections import Counter
from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

FAILED = "failed"


class Tally:
    """Files done, counted by outcome (`outcomes`, in the summary's order, FAILED among
    them), the failures with their reasons, and a progress bar labelled `verb` over `files`
    files of `size` bytes, shown while the tally is entered."""

    def __init__(self, verb: str, outcomes: Sequence[str], files: int, size: int, *,
                 quiet: bool) -> None:
        self.counts: Counter[str] = Counter()
        self.failures: list[tuple[str, str]] = []
        self._outcomes = outcomes
        self._bytes = 0
        self._start = time.perf_counter()
        self._progress = Progress(
            TextColumn(verb), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[done]}/{task.fields[files]} files, "
                       "{task.fields[rate]:.0f} files/s,"),
            TransferSpeedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), disable=quiet)
        self._task = self._progress.add_task(verb, total=size, done=0, files=files, rate=0.0)

    def __enter__(self) -> "Tally":
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def add(self, outcome: str, size: int, name: str = "", why: str = "") -> None:
        """One file of `size` bytes done with `outcome`; a failure names it and says why."""
        self.counts[outcome] += 1
        self._bytes += size
        if outcome == FAILED:
            self.failures.append((name, why))
        done = self.counts.total()
        self._progress.update(self._task, advance=size, done=done, rate=done / self._seconds())

    def finish(self) -> int:
        """Print each failure (stderr), then the summary (stdout); the exit code."""
        for name, why in self.failures:  # one line each, never wrapped: for grep and for people
            print(f"failed: {name}: {why}", file=sys.stderr)
        seconds, done = self._seconds(), self.counts.total()
        print(f"{done} files: " + ", ".join(f"{self.counts[o]} {o}" for o in self._outcomes)
              + f" in {seconds:.1f} s ({self._bytes / 1e6:.1f} MB, {done / seconds:.0f} "
              f"files/s, {self._bytes / 1e6 / seconds:.1f} MB/s)")
        return 1 if self.failures else 0

    def _seconds(self) -> float:
        return max(time.perf_counter() - self._start, 1e-9)
