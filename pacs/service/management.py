"""Datasets and DICOM stores as the Cloud Healthcare API manages them (spec 2.1-2.3, 2.5):
create, get, list (paged, stores by label), patch and delete, in Google's JSON shapes; a
dataset's creation is a long-running operation, done at once and kept under the dataset."""

import base64
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from pacs.ascii_numbers import ascii_int
from pacs.names import valid_id
from pacs.service.archive import Archive
from pacs.service.errors import AlreadyExists, InvalidArgument, NotFound
from pacs.service.profiles import GOOGLE, PROFILES
from storage.rows import DatasetRow, OperationRow, StoreRow

PROFILE_LABEL = "pacs-profile"  # the label that shows (and at creation chooses) the profile
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000  # datasets and stores, as Google pages them
STORE_FIELDS = ("labels", "notificationConfig", "notificationConfigs", "streamConfigs")
# Label keys start with a lowercase letter; keys and values hold lowercase letters, digits,
# underscores and hyphens (Google: \p{Ll}\p{Lo}\p{N}_-).
_LABEL_KEY = re.compile(r"[^\W\d_A-Z](?:[^\W A-Z]|-){0,62}")
_LABEL_VALUE = re.compile(r"(?:[^\W A-Z]|-){0,63}")
_FILTER_TERM = re.compile(r'labels\.("?)([^"=:\s]+)\1\s*(=\s*"?([^"\s]*)"?|:\s*\*)')


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _id(kind: str, value: str) -> str:
    if not valid_id(value):
        raise InvalidArgument(f"invalid {kind} ID {value[:80]!r}: use 1 to 256 letters, "
                              "digits, underscores, hyphens and dots")
    return value


def _page(page_size: int | None, page_token: str) -> tuple[str, int]:
    """The name to list after and how many, from Google's pageToken and pageSize."""
    size = DEFAULT_PAGE_SIZE if not page_size else page_size
    if size < 0:
        raise InvalidArgument("pageSize must not be negative")
    try:
        after = base64.urlsafe_b64decode(page_token.encode()).decode() if page_token else ""
    except ValueError as exc:
        raise InvalidArgument(f"invalid pageToken {page_token[:40]!r}") from exc
    return after, min(size, MAX_PAGE_SIZE)


def _next_token(names: list[str], limit: int) -> dict[str, str]:
    return {"nextPageToken": base64.urlsafe_b64encode(names[-1].encode()).decode()} \
        if len(names) == limit and names else {}


# --- datasets --------------------------------------------------------------------------------

def dataset_json(row: DatasetRow) -> dict[str, Any]:
    return {"name": row.name, **({"timeZone": row.time_zone} if row.time_zone else {})}


async def create_dataset(archive: Archive, location: str, dataset_id: str,
                         body: dict[str, Any], version: str) -> dict[str, Any]:
    """Create the dataset; the finished Operation, as Google answers (spec 2.2)."""
    name = f"{location}/datasets/{_id('dataset', dataset_id)}"
    row = await archive.index.create_dataset(name, str(body.get("timeZone") or ""))
    if row is None:
        raise AlreadyExists(f"dataset {name} already exists")
    return await record_operation(
        archive, name, f"google.cloud.healthcare.{version}.dataset.DatasetService.CreateDataset",
        {"@type": f"type.googleapis.com/google.cloud.healthcare.{version}.dataset.Dataset",
         **dataset_json(row)}, version)


async def record_operation(archive: Archive, dataset: str, method: str,
                           response: dict[str, Any], version: str,
                           counter: dict[str, str] | None = None) -> dict[str, Any]:
    """A long-running operation of `dataset` that has already finished with `response`
    (done before answering), kept for clients to poll (spec 2.5)."""
    operation = finished(running_operation(method, version), response=response)
    operation["metadata"]["counter"] = counter or {}
    return operation_json(await archive.index.add_operation(dataset, orjson.dumps(operation)
                                                            .decode()))


def running_operation(method: str, version: str) -> dict[str, Any]:
    """An Operation's body (without its name) as it starts: OperationMetadata alone."""
    return {"metadata": {"@type": f"type.googleapis.com/google.cloud.healthcare.{version}"
                                  ".OperationMetadata",
                         "apiMethodName": method, "createTime": _now(), "counter": {}}}


def finished(operation: dict[str, Any], *, response: dict[str, Any] | None = None,
             error: dict[str, Any] | None = None) -> dict[str, Any]:
    """`operation` done, with its `response` or its `error` (a google.rpc.Status)."""
    operation["metadata"]["endTime"] = _now()
    operation["metadata"]["counter"].pop("pending", None)
    operation["done"] = True
    operation.update({"response": response} if error is None else {"error": error})
    return operation


async def get_dataset(archive: Archive, name: str) -> dict[str, Any]:
    return dataset_json(await _dataset(archive, name))


async def list_datasets(archive: Archive, location: str, page_size: int | None,
                        page_token: str) -> dict[str, Any]:
    after, limit = _page(page_size, page_token)
    rows = await archive.index.list_datasets(location, after, limit)
    return {"datasets": [dataset_json(r) for r in rows],
            **_next_token([r.name for r in rows], limit)}


async def patch_dataset(archive: Archive, name: str, body: dict[str, Any],
                        update_mask: str) -> dict[str, Any]:
    row = await _dataset(archive, name)
    fields = _mask(update_mask, ("timeZone",))
    time_zone = str(body.get("timeZone") or "") if "timeZone" in fields else row.time_zone
    updated = await archive.index.update_dataset(name, time_zone)
    return dataset_json(updated or row)


async def delete_dataset(archive: Archive, name: str) -> dict[str, Any]:
    """Delete the dataset and everything in it (spec 2.2: Empty)."""
    if await archive.index.delete_dataset(name) is None:  # its blobs go after the grace
        raise NotFound(f"dataset {name} not found")
    return {}


async def _dataset(archive: Archive, name: str) -> DatasetRow:
    row = await archive.index.get_dataset(name)
    if row is None:
        raise NotFound(f"dataset {name} not found")
    return row


# --- DICOM stores ----------------------------------------------------------------------------

def store_json(row: StoreRow) -> dict[str, Any]:
    config: dict[str, Any] = orjson.loads(row.config)
    return {"name": row.name, **config,
            "labels": {**config.get("labels", {}), PROFILE_LABEL: row.profile}}


async def create_store(archive: Archive, dataset: str, store_id: str,
                       body: dict[str, Any]) -> dict[str, Any]:
    """Create the store (synchronously, as Google does), `google` unless `pacs-profile` in
    its labels chooses another profile."""
    await _dataset(archive, dataset)
    name = f"{dataset}/dicomStores/{_id('DICOM store', store_id)}"
    config = _store_config(body, STORE_FIELDS)
    labels = dict(config.get("labels", {}))
    profile = labels.pop(PROFILE_LABEL, GOOGLE.name)
    if profile not in PROFILES:
        raise InvalidArgument(f"label {PROFILE_LABEL}={profile!r}: the profiles are "
                              f"{', '.join(PROFILES)}")
    config["labels"] = labels
    row = await archive.index.create_store(name, profile, orjson.dumps(config).decode())
    if row is None:
        raise AlreadyExists(f"DICOM store {name} already exists")
    return store_json(row)


async def get_store(archive: Archive, name: str) -> dict[str, Any]:
    row = await archive.index.get_store(name)
    if row is None:
        raise NotFound(f"DICOM store {name} not found")
    return store_json(row)


async def list_stores(archive: Archive, dataset: str, page_size: int | None, page_token: str,
                      label_filter: str) -> dict[str, Any]:
    """A page of the dataset's stores; `label_filter` keeps those whose labels match terms
    `labels.KEY=VALUE` or `labels.KEY:*` joined by AND (AIP-160, the part Google supports)."""
    await _dataset(archive, dataset)
    terms = _filter_terms(label_filter)
    after, limit = _page(page_size, page_token)
    found: list[dict[str, Any]] = []
    last = after
    while len(found) < limit:
        rows = await archive.index.list_stores(dataset, last, limit)
        found += [store for store in map(store_json, rows) if _matches(store, terms)]
        if len(rows) < limit:
            return {"dicomStores": found}
        last = rows[-1].name
    return {"dicomStores": found[:limit], **_next_token([s["name"] for s in found[:limit]],
                                                       limit)}


async def patch_store(archive: Archive, name: str, body: dict[str, Any],
                      update_mask: str) -> dict[str, Any]:
    row = await archive.index.get_store(name)
    if row is None:
        raise NotFound(f"DICOM store {name} not found")
    fields = _mask(update_mask, STORE_FIELDS)
    config = {**orjson.loads(row.config), **_store_config(body, fields)}
    for field in fields:
        if field not in body:
            config.pop(field, None)
    config["labels"] = {k: v for k, v in config.get("labels", {}).items()
                        if k != PROFILE_LABEL}
    updated = await archive.index.update_store(name, orjson.dumps(config).decode())
    return store_json(updated or row)


async def delete_store(archive: Archive, name: str) -> dict[str, Any]:
    if await archive.index.delete_store(name) is None:  # its blobs go after the grace
        raise NotFound(f"DICOM store {name} not found")
    archive.stores.forget(name)
    return {}


def _store_config(body: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    config = {field: body[field] for field in fields if field in body}
    labels = config.get("labels", {})
    if not isinstance(labels, dict) or len(labels) > 64 or not all(
            isinstance(k, str) and isinstance(v, str) and _LABEL_KEY.fullmatch(k)
            and _LABEL_VALUE.fullmatch(v) for k, v in labels.items()):
        raise InvalidArgument("labels must be at most 64 keys of 1-63 lowercase letters, "
                              "digits, underscores or hyphens (starting with a letter), each "
                              "with a value of 0-63 of those")
    return config


def _mask(update_mask: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    fields = tuple(f.strip() for f in update_mask.split(",") if f.strip())
    if not fields:
        raise InvalidArgument("updateMask is required: name the fields to change")
    unknown = [f for f in fields if f not in allowed]
    if unknown:
        raise InvalidArgument(f"updateMask names {unknown[0]!r}; it may name "
                              f"{', '.join(allowed)}")
    return fields


def _filter_terms(text: str) -> list[tuple[str, str | None]]:
    terms: list[tuple[str, str | None]] = []
    for term in filter(None, (t.strip() for t in re.split(r"\s+AND\s+", text.strip()))):
        found = _FILTER_TERM.fullmatch(term)
        if found is None:
            raise InvalidArgument(f"invalid filter {term[:80]!r}: only labels.KEY=VALUE and "
                                  "labels.KEY:* joined by AND are supported")
        terms.append((found[2], None if found[3].lstrip().startswith(":") else found[4]))
    return terms


def _matches(store: dict[str, Any], terms: list[tuple[str, str | None]]) -> bool:
    labels = store["labels"]
    return all(key in labels and (value is None or labels[key] == value)
               for key, value in terms)


# --- operations ------------------------------------------------------------------------------

def operation_json(row: OperationRow) -> dict[str, Any]:
    return {"name": f"{row.dataset}/operations/{row.id}", **orjson.loads(row.body)}


async def get_operation(archive: Archive, dataset: str, operation: str) -> dict[str, Any]:
    number = _operation_id(operation)
    row = None if number is None else await archive.index.get_operation(dataset, number)
    if row is None:
        raise NotFound(f"operation {dataset}/operations/{operation} not found")
    return operation_json(row)


def _operation_id(text: str) -> int | None:
    """An operation id (a 64-bit signed integer, as the index keeps it), or None."""
    number = ascii_int(text)
    return number if number is not None and 0 <= number < 2**63 else None


async def cancel_operation(archive: Archive, dataset: str, operation: str) -> dict[str, Any]:
    """Google's best-effort cancel (spec 2.5): a job still running stops at its next unit of
    work with error code 1 (CANCELLED), keeping what it did; a finished operation is left as
    it is. Empty, or NotFound."""
    found = await get_operation(archive, dataset, operation)
    if not found.get("done"):
        await archive.index.cancel_job(dataset, int(found["name"].rsplit("/", 1)[1]))
    return {}


async def list_operations(archive: Archive, dataset: str, page_size: int | None,
                          page_token: str) -> dict[str, Any]:
    await _dataset(archive, dataset)
    after, limit = _page(page_size, page_token)
    rows = await archive.index.list_operations(dataset, _operation_id(after or "0") or 0,
                                               limit)
    token = {"nextPageToken": base64.urlsafe_b64encode(str(rows[-1].id).encode()).decode()} \
        if len(rows) == limit and rows else {}
    return {"operations": [operation_json(r) for r in rows], **token}


# --- projects and locations ------------------------------------------------------------------

async def list_locations(archive: Archive, project: str) -> dict[str, Any]:
    """The locations of the project's datasets (Google lists its regions; a location here
    exists once a dataset is in it, and any location ID can take one)."""
    prefix = f"projects/{_id('project', project)}/locations/"
    ids = sorted({name[len(prefix):].split("/")[0]
                  for name in await archive.index.dataset_names() if name.startswith(prefix)})
    return {"locations": [location_json(project, location) for location in ids]}


def location_json(project: str, location: str) -> dict[str, Any]:
    return {"name": f"projects/{_id('project', project)}/locations/{_id('location', location)}",
            "locationId": location}


async def list_projects(archive: Archive) -> dict[str, Any]:
    """The projects, in Cloud Resource Manager's shape (spec 2.6): a project exists here once
    it has a dataset."""
    return {"projects": [project_json(project) for project in await _projects(archive)]}


async def get_project(archive: Archive, project: str) -> dict[str, Any]:
    if project not in await _projects(archive):
        raise NotFound(f"project {project[:80]!r} not found (a project exists once it has a "
                       "dataset)")
    return project_json(project)


async def _projects(archive: Archive) -> list[str]:
    return sorted({name.split("/")[1] for name in await archive.index.dataset_names()})


def project_json(project: str) -> dict[str, Any]:
    return {"projectId": _id("project", project), "name": project,
            "lifecycleState": "ACTIVE"}
