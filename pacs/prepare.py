"""Prepare a data directory before any worker serves it: apply the index migrations and
create the configured stores. `pacs serve` runs this in a child process, so that its
supervisor never loads what only workers need."""

import asyncio

from pacs.settings import Settings


def prepare(settings: Settings) -> None:
    """Open the archive once, and close it."""
    from pacs.service.archive import open_archive  # in the child process only

    async def run() -> None:
        archive = await open_archive(settings)
        await archive.close()
    asyncio.run(run())
