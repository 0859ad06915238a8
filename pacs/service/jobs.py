"""Long-running operations whose work outlives the request that asked for it (spec 2.5):
the request checks what it can at once, records the operation with its job in the index and
answers with the operation's name; a runner (`pacs/service/job_runner.py`) in some server
process claims the job and does the work, keeping the operation's counters up to date for
clients that poll it."""

from dataclasses import dataclass
from typing import Any

import orjson

from pacs.service.archive import Archive
from pacs.service.errors import Cancelled, InvalidArgument
from pacs.service.management import running_operation
from pacs.service.stores import StoreContext


@dataclass
class Job:
    """A claimed job as its kind's work sees it. `work` is what was asked (`kind`, `store`,
    `version`, `request`: the API body) and `state`, the progress the work keeps up to date
    after each unit it finishes, so that whenever it is saved it is a point to resume from;
    `operation` is the Operation's body the API shows, counters and all."""

    id: int
    dataset: str
    operation: dict[str, Any]
    work: dict[str, Any]
    cancelled: bool = False  # the caller asked it to stop (learnt at the last save)

    @property
    def request(self) -> dict[str, Any]:
        request: dict[str, Any] = self.work["request"]
        return request

    @property
    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.work.setdefault("state", {})
        return state

    @property
    def name(self) -> str:
        return f"{self.dataset}/operations/{self.id}"

    def count(self, **counter: int) -> None:
        """Set the operation's counters (the zero ones are left out, as Google does)."""
        self.operation["metadata"]["counter"] = {key: str(value)
                                                 for key, value in counter.items() if value}

    def check(self) -> None:
        """Stop here if the caller has asked the operation to stop: Cancelled."""
        if self.cancelled:
            raise Cancelled(f"operation {self.name} was cancelled")


class PartlyFailed(InvalidArgument):
    """A job that finished with some of its items failed: the operation's error, whose
    `details` name them."""

    def __init__(self, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.details = details


async def start_job(archive: Archive, store: StoreContext, kind: str, method: str,
                    request: dict[str, Any], version: str) -> dict[str, Any]:
    """Record the operation of job `kind` on `store`, waiting to be run; what the request
    answers: `{"name": …}`, as Google answers it."""
    dataset = store.name.split("/dicomStores/")[0]
    work = {"kind": kind, "store": store.name, "version": version, "request": request}
    row = await archive.index.add_operation(
        dataset, orjson.dumps(running_operation(method, version)).decode(),
        orjson.dumps(work).decode())
    archive.jobs_waiting.set()
    return {"name": f"{dataset}/operations/{row.id}"}
