"""Readiness: whether the archive's two seams, the index and the blob store, can be reached
now (for /healthz and /readyz)."""

import anyio

from pacs.service.archive import Archive

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
        # a filesystem check is two stat calls: done at once, not behind a thread hop, so a
        # probe is answered before anything else the connection carries is parsed
        archive.blobs.check()
    except Exception as exc:  # noqa: BLE001
        problems.append(f"the blob store cannot be reached ({type(exc).__name__}: {exc})")
    return problems
