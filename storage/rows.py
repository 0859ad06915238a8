"""Values the index hands back: frozen rows, never live cursors."""

from dataclasses import dataclass
from enum import Enum

import orjson

from storage.ingest import Span


@dataclass(frozen=True)
class StoreRow:
    """A DICOM store: `name` is projects/P/locations/L/datasets/D/dicomStores/S."""

    id: int
    name: str
    profile: str


class AddOutcome(Enum):
    """What adding an instance did (the caller maps it to a PS3.18 STOW result)."""

    STORED = "stored"
    DUPLICATE = "duplicate"  # byte-identical copy already stored: success, nothing changed
    CONFLICT = "conflict"  # same SOP Instance UID with other content: stored copy untouched
    SERIES_CONFLICT = "series_conflict"  # Series Instance UID already used by another study


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

    def frames(self) -> list[list[Span]]:
        """Fragments of each frame, frame 1 first."""
        return [[Span(o, n) for o, n in frame] for frame in orjson.loads(self.frames_json)]

    def bulk(self) -> dict[str, Span]:
        """Bulk data spans by path ("7FE00010", "00540016/0/00181078")."""
        return {path: Span(o, n) for path, (o, n) in orjson.loads(self.bulk_json).items()}
