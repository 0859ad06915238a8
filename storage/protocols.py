"""The two seams of the archive: where bytes live (BlobStore) and what is known about them
(InstanceIndex). Everything else is concrete; a deployment swaps these for S3 and PostgreSQL,
and `tests/storage/test_contracts.py` holds every implementation to what is written here.

Blocking or not: BlobStore and StagedBlob methods block (disk or network I/O); callers run
them in a worker thread. InstanceIndex methods are coroutines and never block the loop.
"""

from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO, Protocol

from storage.query import Query, SearchResult
from storage.rows import (
    AddOutcome,
    DatasetRow,
    InstanceLocation,
    InstanceMetadata,
    InstanceRecord,
    JobRow,
    Metrics,
    OperationRow,
    StoredInstance,
    StoreRow,
)


class StagedBlob(Protocol):
    """A blob being received: written in order, hashed as it goes, invisible to readers
    until its store commits it. Blocking."""

    @property
    def size(self) -> int:
        """Bytes written so far."""
        ...

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes written so far."""
        ...

    def write(self, data: bytes) -> None:
        """Append `data`. Raises OSError when the bytes cannot be kept (disk full)."""
        ...

    def close(self) -> None:
        """No more bytes: the blob is complete and can be opened; holds no descriptor."""
        ...

    def open(self) -> BinaryIO:
        """A seekable reader of the complete blob (after `close`), to be closed by the
        caller."""
        ...

    def discard(self) -> None:
        """Forget the blob and its bytes; safe to call more than once, and after a failed
        commit."""
        ...


class BlobStore(Protocol):
    """Immutable blobs under names never reused, so a name always means the same bytes.
    Blocking: run every method in a worker thread."""

    # Bytes per read that stream this store's blobs well: a read is a request to a remote
    # store, so fewer, bigger ones serve a whole blob faster there.
    read_size: int

    def stage(self) -> StagedBlob:
        """A new, empty staged blob of this store."""
        ...

    def commit(self, staged: StagedBlob) -> str:
        """Make the complete staged blob durable under a new name and return the name; only
        then may an index row point at it. Raises OSError if it cannot be made durable (the
        staged blob is left to be discarded) and TypeError for another store's blob."""
        ...

    def read(self, name: str, offset: int, length: int) -> bytes:
        """Up to `length` bytes of blob `name` from `offset`; fewer only at its end. Raises
        FileNotFoundError for a name that is not stored and ValueError for one that could
        not be a name."""
        ...

    def size(self, name: str) -> int:
        """How many bytes blob `name` holds now. Raises FileNotFoundError for a name that is
        not stored."""
        ...

    def delete(self, name: str) -> None:
        """Remove blob `name`; nothing happens if it is not stored."""
        ...

    def names(self, older_than: float) -> Iterator[str]:
        """Every stored blob committed more than `older_than` seconds ago, in no order."""
        ...

    def check(self) -> None:
        """Nothing if the store can be reached now; OSError saying why not (readiness)."""
        ...

    def count_staging(self, older_than: float) -> int:
        """How many staged blobs are untouched for `older_than` seconds and not being
        received by this process (what `discard_staging` would remove)."""
        ...

    def discard_staging(self, older_than: float) -> int:
        """Remove staged blobs untouched for `older_than` seconds and not being received by
        this process (leftovers of interrupted requests); return how many went."""
        ...


class QueryTimeout(RuntimeError):
    """A read of an index ran past its configured time limit and was interrupted (every
    implementation raises this one class)."""


class InstanceIndex(Protocol):
    """Stores, studies, series and instances with what Search and Retrieve need. Every
    method is a coroutine; a read may raise QueryTimeout
    when it runs past the configured limit."""

    async def migrate(self) -> list[str]:
        """Bring the schema up to date; return the names of the migrations applied. Safe to
        call from several processes at once."""
        ...

    async def newer_migrations(self) -> list[str]:
        """The migrations recorded that this version does not know (a newer version of pacs
        wrote the index; this one must not use it); empty when none, or no schema yet.
        Raises OSError if the index cannot be reached."""
        ...

    async def ensure_store(self, name: str, profile: str) -> StoreRow:
        """The store `name`, created with `profile` (and its dataset) if it does not exist
        (an existing store keeps its profile)."""
        ...

    async def get_store(self, name: str) -> StoreRow | None:
        """The store `name`, or None."""
        ...

    async def create_dataset(self, name: str, time_zone: str) -> DatasetRow | None:
        """Create dataset `name` (projects/P/locations/L/datasets/D); None if it exists."""
        ...

    async def get_dataset(self, name: str) -> DatasetRow | None:
        """The dataset `name`, or None."""
        ...

    async def list_datasets(self, location: str, after: str, limit: int) -> list[DatasetRow]:
        """Up to `limit` datasets of `location` (projects/P/locations/L) whose names sort
        after `after`, in name order (a negative limit: all)."""
        ...

    async def dataset_names(self) -> list[str]:
        """The name of every dataset, in order (there are few: for listing projects and
        locations)."""
        ...

    async def update_dataset(self, name: str, time_zone: str) -> DatasetRow | None:
        """Set the dataset's time zone; None if there is no such dataset."""
        ...

    async def delete_dataset(self, name: str) -> list[str] | None:
        """Remove the dataset with its stores, their instances and its operations, in one
        transaction, queueing the removal of their blobs; the blob names the instances had,
        or None if there is no such dataset."""
        ...

    async def create_store(self, name: str, profile: str, config: str) -> StoreRow | None:
        """Create store `name` with `profile` and `config` (JSON); None if it exists. A
        store's id is never reused, even after it is deleted."""
        ...

    async def list_stores(self, dataset: str, after: str, limit: int) -> list[StoreRow]:
        """Up to `limit` stores of `dataset` whose names sort after `after`, in name order
        (a negative limit: all)."""
        ...

    async def update_store(self, name: str, config: str) -> StoreRow | None:
        """Replace the store's config (JSON); None if there is no such store."""
        ...

    async def delete_store(self, name: str) -> list[str] | None:
        """Remove the store and everything in it, in one transaction, queueing the removal
        of its blobs; the blob names its instances had, or None if there is no such
        store."""
        ...

    async def get_policy(self, resource: str) -> str | None:
        """The IAM policy (JSON) set on `resource` (a project, dataset or store), or None."""
        ...

    async def set_policy(self, resource: str, body: str) -> None:
        """Set (replace) the IAM policy (JSON) of `resource`."""
        ...

    async def add_operation(self, dataset: str, body: str,
                            job: str | None = None) -> OperationRow:
        """Record a long-running operation of `dataset` (its JSON `body`) under a new id;
        with a `job` (its work, as JSON), the operation waits to be claimed and run."""
        ...

    async def claim_job(self, lease_seconds: float) -> JobRow | None:
        """Claim the oldest unfinished job that no index holds, or whose holder has not
        saved it for `lease_seconds` (it died or stalled); None if there is none. Each job
        is held by one index at a time, whatever the number of processes or replicas."""
        ...

    async def save_job(self, operation: int, body: str, job: str | None,
                       release: bool = False) -> bool | None:
        """Record the progress of a job this index holds and renew its claim: the
        operation's `body`, and the `job` (None: finished). A finished job's claim is let go,
        and so is one saved with `release` (its holder is stopping: any index may claim it
        at once). Whether a cancel has been requested, or None if the job is no longer this
        index's (its claim lapsed and another took it, or the operation was deleted): the
        caller stops."""
        ...

    async def cancel_job(self, dataset: str, operation: int) -> None:
        """Ask the unfinished job of the operation to stop (its holder learns it at its next
        save); nothing if the operation has finished or does not exist."""
        ...

    async def get_operation(self, dataset: str, operation: int) -> OperationRow | None:
        """Operation `operation` of `dataset`, or None."""
        ...

    async def list_operations(self, dataset: str, after: int,
                              limit: int) -> list[OperationRow]:
        """Up to `limit` operations of `dataset` with ids above `after`, oldest first."""
        ...

    async def add_instance(self, store_id: int, record: InstanceRecord, blob_name: str,
                           blob_size: int, sha256: str) -> AddOutcome:
        """Index a committed blob atomically and durably (the row survives a crash once this
        returns; concurrent calls may share one commit), creating its study and series rows:
        STORED; DUPLICATE if the same SOP Instance UID is stored with the same `sha256`;
        CONFLICT if with another; SERIES_CONFLICT if its series belongs to another study.
        Anything but STORED changes nothing."""
        ...

    async def replace_instance(self, store_id: int, record: InstanceRecord, blob_name: str,
                               blob_size: int, sha256: str) -> tuple[AddOutcome, str | None]:
        """As `add_instance`, except that an instance stored under the same SOP Instance UID
        with other content is replaced (its row removed and its blob's removal queued, in
        the same transaction): STORED and the blob name the replaced row had, else the
        outcome and None; a refused replacement changes nothing."""
        ...

    async def search(self, store_id: int, query: Query) -> SearchResult:
        """One page of `query`'s matches (PS3.4 C.2.2.2 matching), in study, series number,
        instance number order, and whether more exist beyond it."""
        ...

    async def locate(self, store_id: int, study: str, series: str | None = None,
                     instance: str | None = None) -> list[InstanceLocation]:
        """Where each instance under the study, series or instance is, in series number and
        instance number order; empty if there is none."""
        ...

    async def metadata(self, store_id: int, study: str, series: str | None = None,
                       instance: str | None = None) -> list[InstanceMetadata]:
        """The stored DICOM JSON and blob name of each instance under the study, series or
        instance, in the order of `locate`; empty if there is none."""
        ...

    async def delete(self, store_id: int, study: str, series: str | None = None,
                     instance: str | None = None) -> list[str] | None:
        """Remove the instances under the study, series or instance, and series and studies
        left empty, and queue the removal of their blobs, in one transaction; return the
        blob names they had, or None if there were none."""
        ...

    async def metrics(self, store_id: int, study: str | None = None,
                      series: str | None = None) -> Metrics:
        """How many studies, series and instances the store (or the study, or the series)
        holds, and their bytes; zeros when it holds none."""
        ...

    async def referenced(self, blob_names: Sequence[str]) -> set[str]:
        """Those of `blob_names` that an instance row (in any store) or a queued removal
        names: the blobs the orphan sweep must leave alone."""
        ...

    async def check(self) -> None:
        """Nothing if the index can be reached now; OSError saying why not (readiness). Quick:
        it does not wait behind the reads under way."""
        ...

    async def stored_sha256(self, store_id: int, sop_uid: str) -> str | None:
        """The SHA-256 of the instance stored under `sop_uid`, or None if there is none."""
        ...

    async def instances_after(self, after: int, limit: int,
                              store_id: int | None = None) -> list[StoredInstance]:
        """Up to `limit` instance rows of every store (or of store `store_id`) with a `pk`
        above `after`, in `pk` order (a walk over the whole index, a page at a time)."""
        ...

    async def parents_astray(self, repair: bool) -> tuple[int, int]:
        """How many studies and series hold no instance (which no store should keep) or
        record counts of series and instances that are not their rows'; with `repair`,
        recount them and remove the empty ones."""
        ...

    async def due_removals(self, older_than: float, limit: int) -> list[str]:
        """Up to `limit` blob names whose removal was queued more than `older_than` seconds
        ago, oldest first (a read that found them before their rows went has had that long
        to finish)."""
        ...

    async def queued_removals(self) -> int:
        """How many blob removals are queued, due or not (a count: it claims none)."""
        ...

    async def removals_done(self, blob_names: Sequence[str]) -> None:
        """Forget the queued removals of `blob_names` (their blobs are gone)."""
        ...

    async def on_resources_changed(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the event loop) whenever a dataset, store or IAM policy has
        changed through any index of the same database, and whenever changes may have been
        missed, where the database can tell (PostgreSQL's LISTEN/NOTIFY); an index that
        cannot (SQLite) never calls it, and its callers keep their caches' time limits."""
        ...

    async def close(self) -> None:
        """Release connections and threads; the index is not used again."""
        ...
