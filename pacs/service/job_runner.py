"""The job runner of every server process: it claims waiting jobs from the index, one at a
time, runs each with its kind's work, and saves the job's progress (which renews its claim)
every second, or every third of `job_lease_seconds` if that is shorter. A process that dies
stops renewing; once the lease has lapsed, another process or replica claims the job and
carries it on from its last saved state; a process that stops hands its job over at once.
Each kind's work is idempotent, so whatever the dead process did after its last save is
done again harmlessly. A cancel asked for through any replica is learnt at the next save."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from pacs.service import transfer
from pacs.service.archive import Archive
from pacs.service.errors import RPC_CODES, ArchiveError
from pacs.service.jobs import Job, PartlyFailed
from pacs.service.management import finished
from storage.rows import JobRow

log = logging.getLogger("pacs")
Work = Callable[[Archive, Job], Awaitable[dict[str, Any]]]
# each kind of job, and the work that does it (returning the operation's response)
KINDS: dict[str, Work] = {"import": transfer.run_import, "export": transfer.run_export}
SAVE_SECONDS = 1.0  # at most this long between saves of a running job's progress
MAX_CLAIMS = 5  # a job whose runners kept dying (or failing unexpectedly) is given up then


async def run_jobs(archive: Archive) -> None:
    """Claim and run jobs, one at a time, for as long as the server runs: a job this
    process starts at once, one started elsewhere within `job_poll_seconds`."""
    settings = archive.settings
    while True:
        archive.jobs_waiting.clear()
        try:
            row = await archive.index.claim_job(settings.job_lease_seconds)
        except Exception as exc:  # the index out of reach: look again later
            log.warning("could not look for waiting jobs: %s", exc)
            row = None
        if row is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(archive.jobs_waiting.wait(), settings.job_poll_seconds)
            continue
        await run_job(archive, row)


async def run_job(archive: Archive, row: JobRow) -> None:
    """Run the claimed job to its end and save it finished; if this process loses the job
    (its claim lapsed and another took it, or the operation was deleted), stop."""
    job = Job(row.id, row.dataset, orjson.loads(row.body), orjson.loads(row.job))
    if row.claims > 1:
        log.warning("operation %s: taken over (claim %d), resuming from its last saved "
                    "progress", job.name, row.claims)
    else:
        log.info("operation %s: running here", job.name)
    work = asyncio.create_task(_outcome(archive, job, row.claims))
    keeper = asyncio.create_task(_keep_claim(archive, job, work))
    try:
        operation = await work
    except asyncio.CancelledError:
        if asyncio.current_task().cancelling():  # type: ignore[union-attr]
            await _let_go(archive, job)  # the server is stopping
            raise
        return  # lost the claim: whoever holds the job now finishes it
    except Exception:
        log.exception("operation %s failed unexpectedly; it will be tried again once its "
                      "claim lapses", job.name)
        return
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        work.cancel()
    if await archive.index.save_job(job.id, _json(operation), None) is None:
        log.warning("operation %s finished here, but another server had taken it over",
                    job.name)


async def _outcome(archive: Archive, job: Job, claims: int) -> dict[str, Any]:
    """The operation finished: with its work's response, or the error it ended with."""
    operation = job.operation
    if job.work.get("kind") not in KINDS:
        return finished(operation, error=_status(f"no server here knows jobs of kind "
                                                 f"{job.work.get('kind')!r}", "UNIMPLEMENTED"))
    if claims > MAX_CLAIMS:
        return finished(operation, error=_status(
            f"given up after {MAX_CLAIMS} attempts, each cut short", "INTERNAL"))
    try:
        response = await KINDS[job.work["kind"]](archive, job)
    except ArchiveError as exc:
        if job.cancelled:
            operation["metadata"]["cancelRequested"] = True
        details = exc.details if isinstance(exc, PartlyFailed) else []
        return finished(operation, error=_status(exc.message, exc.code, details))
    return finished(operation, response=response)


async def _keep_claim(archive: Archive, job: Job, work: "asyncio.Task[Any]") -> None:
    """Save the job's progress every second (or third of the lease, if shorter), for
    clients polling its counters; a refused save means the job is no longer this
    process's, and its work is stopped."""
    while True:
        await asyncio.sleep(min(archive.settings.job_lease_seconds / 3, SAVE_SECONDS))
        try:
            cancel = await archive.index.save_job(job.id, _json(job.operation),
                                                  _json(job.work))
        except Exception as exc:  # the index out of reach: the next save may get through
            log.warning("operation %s: its progress could not be saved: %s", job.name, exc)
            continue
        if cancel is None:
            log.warning("operation %s: another server has taken it over; stopping here",
                        job.name)
            work.cancel()
            return
        job.cancelled = job.cancelled or cancel


async def _let_go(archive: Archive, job: Job) -> None:
    """Save the job's progress and let it go, so that another server (or this one, started
    again) resumes it at once instead of after the lease; a job that cannot be saved now
    is resumed once its lease lapses."""
    try:
        await archive.index.save_job(job.id, _json(job.operation), _json(job.work),
                                     release=True)
    except Exception as exc:
        log.warning("operation %s: could not be handed over on the way out (%s); it is "
                    "resumed once its lease lapses", job.name, exc)
    else:
        log.info("operation %s: handed over on the way out", job.name)


def _status(message: str, code: str, details: list[dict[str, Any]] | None = None
            ) -> dict[str, Any]:
    """A google.rpc.Status, as an Operation's `error`."""
    return {"code": RPC_CODES[code], "message": message, **({"details": details}
                                                            if details else {})}


def _json(value: dict[str, Any]) -> str:
    return orjson.dumps(value).decode()
