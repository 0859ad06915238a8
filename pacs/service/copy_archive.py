"""Copy one archive into another (`pacs copy`): an embedded archive into PostgreSQL and S3,
or any placement into any other. Datasets, stores (profile and configuration) and IAM
policies come first; then every instance, its bytes checked against the SHA-256 recorded at
ingest and stored through the one store path, so with the same validation as STOW. What the
target already holds with the same bytes is skipped, so an interrupted copy can be run again.
Long-running operations are not copied: they are the source's history, not its content."""

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio

from pacs.names import StoreName
from pacs.service.archive import Archive
from pacs.service.errors import ArchiveError, DataLoss
from pacs.service.export_files import ExportItem, verified_chunks
from pacs.service.import_files import Result
from pacs.service.staging import stage_all
from pacs.service.store_instances import StoreOutcome, store_staged
from pacs.service.stores import StoreContext
from storage.rows import StoredInstance

PAGE = 500  # instances read from the source index at once


@dataclass(frozen=True)
class Copied:
    """One instance's outcome, for the progress bar and the summary."""

    name: str  # STORE:SOP Instance UID
    size: int
    result: Result
    why: str = ""


async def copy_resources(source: Archive, target: Archive) -> int:
    """Create in `target` every dataset and store of `source` it lacks (a store keeps its
    profile and configuration) and set the IAM policies `source` has on projects, datasets
    and stores; how many stores there are."""
    stores = 0
    projects: set[str] = set()
    for dataset in await source.index.dataset_names():
        row = await source.index.get_dataset(dataset)
        if row is not None:
            await target.index.create_dataset(dataset, row.time_zone)
        projects.add(dataset.split("/locations/", 1)[0])
        await _copy_policy(source, target, dataset)
        for store in await source.index.list_stores(dataset, "", -1):
            if await target.index.get_store(store.name) is None:
                await target.index.create_store(store.name, store.profile, store.config)
            await _copy_policy(source, target, store.name)
            stores += 1
    for project in projects:
        await _copy_policy(source, target, project)
    return stores


async def _copy_policy(source: Archive, target: Archive, resource: str) -> None:
    body = await source.index.get_policy(resource)
    if body is not None:
        await target.index.set_policy(resource, body)


async def totals(source: Archive) -> tuple[int, int]:
    """How many instances `source` holds, and their bytes (for a progress bar)."""
    instances = size = 0
    for dataset in await source.index.dataset_names():
        for store in await source.index.list_stores(dataset, "", -1):
            held = await source.index.metrics(store.id)
            instances += held.instances
            size += held.blob_bytes
    return instances, size


async def instances(source: Archive) -> AsyncIterator[StoredInstance]:
    """Every instance of `source`, in the order they were stored, a page at a time."""
    after = 0
    while page := await source.index.instances_after(after, PAGE):
        for row in page:
            yield row
        after = page[-1].pk


class StoreNames:
    """Each source store id's target store (looked up once)."""

    def __init__(self, source: Archive, target: Archive) -> None:
        self._source, self._target = source, target
        self._known: dict[int, StoreContext] = {}

    async def target_of(self, store_id: int) -> StoreContext:
        if store_id not in self._known:
            names = [s.name for d in await self._source.index.dataset_names()
                     for s in await self._source.index.list_stores(d, "", -1)
                     if s.id == store_id]
            if not names:
                raise DataLoss(f"store {store_id} of an instance is not in the source")
            self._known[store_id] = await self._target.stores.get(str(StoreName.parse(
                names[0])))
        return self._known[store_id]


async def copy_instance(source: Archive, target: Archive, row: StoredInstance,
                        stores: StoreNames) -> Copied:
    """Store `row`'s bytes in the target's store of the same name, unless it holds them."""
    try:
        store = await stores.target_of(row.store_id)
    except ArchiveError as exc:
        return Copied(row.sop_uid, 0, Result.FAILED, exc.message)
    name = f"{store.name.rsplit('/', 1)[-1]}:{row.sop_uid}"
    if await target.index.stored_sha256(store.id, row.sop_uid) == row.sha256:
        return Copied(name, row.blob_size, Result.ALREADY_STORED)
    item = ExportItem(row.study_uid, row.series_uid, row.sop_uid, row.blob_name,
                      row.blob_size, row.sha256)
    try:
        staged = await anyio.to_thread.run_sync(
            stage_all, target.blobs, verified_chunks(source.blobs, item))
    except (DataLoss, OSError) as exc:
        why = exc.message if isinstance(exc, DataLoss) else f"{exc.strerror or exc}"
        return Copied(name, row.blob_size, Result.FAILED, why)
    outcome = StoreOutcome()
    await store_staged(target, store, staged, outcome)
    if not outcome.stored:
        return Copied(name, row.blob_size, Result.FAILED, outcome.detail)
    return Copied(name, row.blob_size,
                  Result.ALREADY_STORED if outcome.duplicate else Result.STORED)


async def copy_instances(source: Archive, target: Archive, jobs: int,
                         done: Callable[[Copied], None]) -> None:
    """Copy every instance of `source` into `target`, `jobs` at once, calling `done` with
    each outcome."""
    stores = StoreNames(source, target)
    limiter = anyio.Semaphore(jobs)

    async def one(row: StoredInstance) -> None:
        try:
            done(await copy_instance(source, target, row, stores))
        finally:
            limiter.release()

    async with anyio.create_task_group() as group:
        async for row in instances(source):
            await limiter.acquire()
            group.start_soon(one, row)
