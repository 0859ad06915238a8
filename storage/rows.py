"""Values the index hands back: frozen rows, never live cursors."""

from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from typing import Any, NamedTuple

import orjson


@dataclass(frozen=True)
class Span:
    """A byte range of a stored blob."""

    offset: int
    length: int


@dataclass(frozen=True)
class InstanceRecord:
    """Everything the index keeps about one instance, derived from its header at ingest."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    attributes: dict[str, Any]  # top-level DICOM JSON, keyed by 8-hex tag
    metadata: bytes  # the same, serialized; each BulkDataURI is its attribute path
    bulk: dict[str, Span]  # attribute path ("7FE00010", "00540016/0/00181078") → value span
    frames: tuple[tuple[Span, ...], ...]  # fragments of each frame, in frame order
    storage_class: str = "STANDARD"  # the blob's storage class, as the client asked for it


@dataclass(frozen=True)
class StoreRow:
    """A DICOM store: `name` is projects/P/locations/L/datasets/D/dicomStores/S; `config` is
    the JSON of what its owner set (labels, notification and stream configurations)."""

    id: int
    name: str
    profile: str
    config: str = "{}"


@dataclass(frozen=True)
class DatasetRow:
    """A dataset: `name` is projects/P/locations/L/datasets/D."""

    name: str
    time_zone: str
    created_at: str


@dataclass(frozen=True)
class OperationRow:
    """A long-running operation of a dataset; `body` is its JSON as the API shows it."""

    id: int
    dataset: str
    body: str


@dataclass(frozen=True)
class JobRow:
    """The unfinished work of a long-running operation, claimed by one index: its operation's
    `body` as last saved, the `job` (what to do and how far it got, as JSON), and how many
    times it has been claimed (more than once: a claimer died or stalled)."""

    id: int
    dataset: str
    body: str
    job: str
    claims: int


class AddOutcome(Enum):
    """What adding an instance did (the caller maps it to a PS3.18 STOW result)."""

    STORED = "stored"
    DUPLICATE = "duplicate"  # byte-identical copy already stored: success, nothing changed
    CONFLICT = "conflict"  # same SOP Instance UID with other content: stored copy untouched
    SERIES_CONFLICT = "series_conflict"  # Series Instance UID already used by another study


class StoredInstance(NamedTuple):
    """An instance row as `pacs verify` checks it against its blob."""

    pk: int
    store_id: int
    study_uid: str
    series_uid: str
    sop_uid: str
    blob_name: str
    blob_size: int
    sha256: str


class InstanceMetadata(NamedTuple):
    """An instance's stored DICOM JSON, whose BulkDataURIs are attribute paths, and the name
    of its blob, which changes whenever the instance does (a tuple: a series' metadata is
    hundreds of them)."""

    study_uid: str
    series_uid: str
    sop_uid: str
    metadata: bytes
    blob_name: str


@dataclass(frozen=True)
class InstanceLocation:
    """Where an instance's bytes are, and the spans recorded at ingest."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    blob_name: str
    blob_size: int
    frames_json: bytes
    bulk_json: bytes
    storage_class: str = "STANDARD"

    @cached_property
    def frames(self) -> list[list[Span]]:
        """Fragments of each frame, frame 1 first (parsed once per location)."""
        return [[Span(o, n) for o, n in frame] for frame in orjson.loads(self.frames_json)]

    @cached_property
    def bulk(self) -> dict[str, Span]:
        """Bulk data spans by attribute path ("7FE00010", "00540016/0/00181078")."""
        return {path: Span(o, n) for path, (o, n) in orjson.loads(self.bulk_json).items()}


@dataclass(frozen=True)
class Metrics:
    """Counts and sizes of what a store, study or series holds."""

    studies: int
    series: int
    instances: int
    blob_bytes: int  # the stored Part 10 files
    structured_bytes: int  # the index's rows for them
