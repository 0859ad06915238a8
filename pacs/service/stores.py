"""The store context every operation takes: which store, by id and name, with its profile;
resolved once per request through a short-lived cache (stores can be deleted, by another
process too, so a remembered store is looked up again after `ttl` seconds, or at once when
the index says stores changed)."""

import time
from dataclasses import dataclass

from pacs.service.errors import NotFound
from pacs.service.profiles import PROFILES, Profile
from storage.protocols import InstanceIndex
from storage.rows import StoreRow


@dataclass(frozen=True)
class StoreContext:
    """One DICOM store: its index id, its resource name and its profile."""

    id: int
    name: str
    profile: Profile


class StoreDirectory:
    """Finds stores by name for every door."""

    def __init__(self, index: InstanceIndex, ttl: float) -> None:
        self._index = index
        self._ttl = ttl
        self._known: dict[str, tuple[StoreContext, float]] = {}

    async def ensure(self, name: str, profile: str) -> StoreContext:
        """The store `name`, created with `profile` if it does not exist yet."""
        return self._context(await self._index.ensure_store(name, profile))

    async def get(self, name: str) -> StoreContext:
        """The store `name`; NotFound if there is none."""
        known = self._known.get(name)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        row = await self._index.get_store(name)
        if row is None:
            self._known.pop(name, None)
            raise NotFound(f"DICOM store {name} not found")
        context = self._context(row)
        self._known[name] = (context, time.monotonic() + self._ttl)
        return context

    def forget(self, name: str) -> None:
        """Stop remembering store `name` (this process deleted it)."""
        self._known.pop(name, None)

    def forget_all(self) -> None:
        """Stop remembering every store (one changed, through another replica perhaps)."""
        self._known.clear()

    @staticmethod
    def _context(row: StoreRow) -> StoreContext:
        return StoreContext(row.id, row.name, PROFILES[row.profile])
