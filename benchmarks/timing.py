"""Run request jobs at a fixed concurrency and summarise latency and throughput."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

MAX_FAILURE_SAMPLES = 5  # distinct messages kept per scenario
BURST_POLL_S = 0.005


class VerificationError(Exception):
    """A response arrived but was not what the request should produce."""


@dataclass(frozen=True)
class Result:
    """One verified response: time to last byte, units delivered (instances, frames...), bytes."""

    latency_s: float
    units: int = 1
    nbytes: int = 0


Job = Callable[[], Awaitable[Result]]


@dataclass
class Tally:
    """What a pool of jobs produced."""

    results: list[Result]
    wall_s: float
    errors: list[str]
    failures: list[str]

    @property
    def done(self) -> int:
        return len(self.results) + len(self.errors) + len(self.failures)


async def run_pool(jobs: Sequence[Job], concurrency: int, tally: Tally | None = None) -> Tally:
    """Run `jobs` with at most `concurrency` in flight; every job runs exactly once. Pass
    `tally` to watch it fill while the pool runs."""
    queue = iter(jobs)
    tally = Tally([], 0.0, [], []) if tally is None else tally

    async def worker() -> None:
        for job in queue:
            await _run_one(job, tally)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(jobs)))))
    tally.wall_s = time.perf_counter() - start
    return tally


async def run_beside(
    jobs: Sequence[Job], burst: Sequence[Job], concurrency: int
) -> tuple[Tally, Tally]:
    """Run `burst` at `concurrency` and, once its first `concurrency` requests are done (every
    connection open and busy), `jobs` one at a time, over and over, until the burst is done.
    Returns the tallies of `jobs` and of the burst."""
    burst_tally = Tally([], 0.0, [], [])
    pool = asyncio.create_task(run_pool(burst, concurrency, burst_tally))
    while burst_tally.done < min(concurrency, len(burst)) and not pool.done():
        await asyncio.sleep(BURST_POLL_S)
    tally = Tally([], 0.0, [], [])
    start = time.perf_counter()
    for job in itertools.cycle(jobs):
        if pool.done():
            break
        await _run_one(job, tally)
    tally.wall_s = time.perf_counter() - start
    await pool
    return tally, burst_tally


async def _run_one(job: Job, tally: Tally) -> None:
    try:
        tally.results.append(await job())
    except VerificationError as exc:
        tally.failures.append(str(exc))
    except Exception as exc:  # transport, timeout, malformed body: counted, not fatal
        tally.errors.append(f"{type(exc).__name__}: {exc}")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear-interpolated percentile (as numpy's default) of a non-empty sequence."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise(tally: Tally, concurrency: int, unit: str | None = None) -> dict[str, Any]:
    """Figures of one scenario: rates over wall time of successful requests, latency in ms."""
    ok = tally.results
    wall = max(tally.wall_s, 1e-9)
    figures: dict[str, Any] = {
        "concurrency": concurrency,
        "requests": len(ok) + len(tally.errors) + len(tally.failures),
        "ok": len(ok),
        "wall_s": round(tally.wall_s, 3),
        "requests_per_s": round(len(ok) / wall, 2),
    }
    if unit:
        figures[f"{unit}_per_s"] = round(sum(r.units for r in ok) / wall, 2)
    if any(r.nbytes for r in ok):
        figures["mb_per_s"] = round(sum(r.nbytes for r in ok) / wall / 1e6, 2)
    if ok:
        latencies = [r.latency_s * 1000 for r in ok]
        figures["p50_ms"] = round(percentile(latencies, 0.50), 2)
        figures["p95_ms"] = round(percentile(latencies, 0.95), 2)
        figures["max_ms"] = round(max(latencies), 2)
    figures["errors"] = len(tally.errors)
    figures["verification_failures"] = len(tally.failures)
    samples = list(dict.fromkeys(tally.errors + tally.failures))[:MAX_FAILURE_SAMPLES]
    if samples:
        figures["failure_samples"] = samples
    return figures
