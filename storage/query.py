"""A parsed QIDO-RS query (PS3.18 10.6.1), independent of HTTP and of SQL."""

from dataclasses import dataclass
from enum import Enum


class Level(Enum):
    """Query/retrieve levels (PS3.4 C.3)."""

    STUDY = 0
    SERIES = 1
    INSTANCE = 2


# Value representations whose values are numbers (PS3.5 6.2): matched by value, not by text.
NUMERIC_VRS = frozenset({"DS", "IS", "US", "SS", "UL", "SL", "FL", "FD", "SV", "UV"})


class MatchKind(Enum):
    """Matching types of PS3.4 C.2.2.2 that need a filter (universal matching needs none)."""

    SINGLE = "single"  # C.2.2.2.1
    LIST = "list"  # C.2.2.2.2 (UID list)
    WILDCARD = "wildcard"  # C.2.2.2.3
    RANGE = "range"  # C.2.2.2.5: values = (low, high), either may be ""
    FUZZY = "fuzzy"  # C.2.2.2.6 for PN: any query token is a prefix of a name component


@dataclass(frozen=True)
class Match:
    """One match key: `tag` with `vr`, matched by `kind` against `values`."""

    tag: int
    vr: str
    kind: MatchKind
    values: tuple[str, ...]


@dataclass(frozen=True)
class Query:
    """A search at `level`, scoped by the UIDs in the URL."""

    level: Level
    matches: tuple[Match, ...] = ()
    study_uid: str | None = None
    series_uid: str | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class SearchRow:
    """One result: the stored attributes of each level plus the computed ones."""

    study_uid: str
    series_uid: str | None
    sop_uid: str | None
    study_attrs: bytes
    series_attrs: bytes | None
    instance_attrs: bytes | None
    study_series: int
    study_instances: int
    series_instances: int
    modalities: tuple[str, ...]
    sop_classes: tuple[str, ...]


@dataclass(frozen=True)
class SearchResult:
    """Rows of one page; `more` when results beyond `limit` exist."""

    rows: list[SearchRow]
    more: bool
