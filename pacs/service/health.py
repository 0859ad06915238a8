"""Readiness: whether the archive's two seams, the index and the blob store, can be reached
(for /healthz and /readyz). They are checked in the background every few seconds, so a probe
is answered at once from the last check, never waits on a seam, and a burst of probes never
reaches a remote database or bucket."""

import logging

import anyio

from pacs.service.archive import Archive

log = logging.getLogger("pacs")
CHECK_SECONDS = 5.0  # a seam that takes longer to answer is not ready


async def unreachable(archive: Archive) -> list[str]:
    """What cannot be reached now, each with why; empty when ready."""
    problems = []
    try:
        with anyio.fail_after(CHECK_SECONDS):
            await archive.index.check()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; say which
        problems.append(f"the index cannot be reached ({type(exc).__name__}: {exc})")
    try:
        with anyio.fail_after(CHECK_SECONDS):  # a remote store's check is a request
            await anyio.to_thread.run_sync(archive.blobs.check, abandon_on_cancel=True)
    except Exception as exc:  # noqa: BLE001
        problems.append(f"the blob store cannot be reached ({type(exc).__name__}: {exc})")
    return problems


class Readiness:
    """The problems the last check found (empty: ready)."""

    def __init__(self) -> None:
        self.problems: list[str] = ["not checked yet"]

    async def check(self, archive: Archive) -> None:
        """Check now; a change between ready and not (or in why not) is logged once."""
        before, self.problems = self.problems, await unreachable(archive)
        if self.problems and self.problems != before:
            log.warning("not ready: %s", "; ".join(self.problems))
        elif before and not self.problems and before != ["not checked yet"]:
            log.warning("ready again: the index and the blob store can be reached")

    async def watch(self, archive: Archive, interval: float) -> None:
        """Check every `interval` seconds, until cancelled."""
        while True:
            await anyio.sleep(interval)
            await self.check(archive)
