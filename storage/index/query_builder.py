"""QIDO-RS query → parameterized SQL, one function per PS3.4 C.2.2.2 matching type, written
once for every database: what differs between SQLite and PostgreSQL (placeholders, case
folding, JSON access, exact wildcards, aggregates) is a `Dialect`, a handful of small pieces.

Column names come only from the allow-list in `attributes.COLUMNS`; values are always
parameters; LIKE and GLOB patterns are escaped.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from storage.index.attributes import COLUMNS, FOLDED_COLUMNS
from storage.levels import MODALITIES_IN_STUDY, SOP_CLASSES_IN_STUDY, level_of
from storage.query import NUMERIC_VRS, Level, Match, MatchKind, Query, SearchRow

Sql = tuple[str, list[object]]
CASE_INSENSITIVE_WILDCARD_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC"})


class Params:
    """The values of one statement; adding one gives the placeholder that names it."""

    def __init__(self, placeholder: Callable[[int], str]) -> None:
        self.values: list[object] = []
        self._placeholder = placeholder

    def __call__(self, value: object) -> str:
        self.values.append(value)
        return self._placeholder(len(self.values))


@dataclass(frozen=True)
class Dialect:
    """What the SQL of one database spells its own way."""

    placeholder: Callable[[int], str]  # the n-th parameter (from 1)
    fold: Callable[[str], str]  # an expression case folded as Python's str.casefold does
    json_value: Callable[[str, int, str], str]  # (JSON column, tag, VR) → its first value
    exact_wildcard: Callable[[str, str, Params], str]  # (expr, C.2.2.2.3 pattern) → clause
    folded_like: Callable[[str, str, Params], str]  # the same over case-folded text
    distinct_values: Callable[[str], str]  # aggregate: the distinct values, comma-joined

    def params(self) -> Params:
        """An empty parameter list of this dialect."""
        return Params(self.placeholder)


def like_pattern(pattern: str) -> str:
    """A C.2.2.2.3 pattern (`*` any run, `?` one character) as a LIKE pattern under
    ESCAPE '\\'."""
    return "".join({"*": "%", "?": "_", "%": "\\%", "_": "\\_", "\\": "\\\\"}.get(c, c)
                   for c in pattern)


def like(expr: str, pattern: str, params: Params) -> str:
    """`expr` LIKE the C.2.2.2.3 pattern."""
    return f"{expr} LIKE {params(like_pattern(pattern))} ESCAPE '\\'"


def _sqlite_json_value(column: str, tag: int, vr: str) -> str:
    suffix = ".Alphabetic" if vr == "PN" else ""
    return f"json_extract({column}, '$.\"{tag:08X}\".Value[0]{suffix}')"


def _sqlite_glob(expr: str, pattern: str, params: Params) -> str:
    """GLOB: SQLite's LIKE ignores ASCII case, GLOB does not."""
    return f"{expr} GLOB {params(''.join('[[]' if c == '[' else c for c in pattern))}"


SQLITE = Dialect(
    placeholder=lambda _: "?",
    fold=lambda expr: f"casefold({expr})",  # connection.casefold, registered on each connection
    json_value=_sqlite_json_value,
    exact_wildcard=_sqlite_glob,
    folded_like=like,  # LIKE ignores ASCII case, and both sides are folded already
    distinct_values=lambda expr: f"group_concat(DISTINCT {expr})",
)

_FROM = {
    Level.STUDY: "studies st",
    Level.SERIES: "series se JOIN studies st ON st.pk = se.study_pk",
    Level.INSTANCE: "instances i JOIN series se ON se.pk = i.series_pk "
                    "JOIN studies st ON st.pk = i.study_pk",
}
# NULLS FIRST is SQLite's own order for ascending keys, written out for PostgreSQL's sake.
_ORDER = {
    Level.STUDY: "st.pk",
    Level.SERIES: "st.pk, se.series_number NULLS FIRST, se.pk",
    Level.INSTANCE: "st.pk, se.series_number NULLS FIRST, se.pk, "
                    "i.instance_number NULLS FIRST, i.pk",
}
_ALIAS = {Level.STUDY: "st", Level.SERIES: "se", Level.INSTANCE: "i"}
_ATTRS = {Level.STUDY: "st.attrs", Level.SERIES: "se.attrs", Level.INSTANCE: "i.metadata"}
_SELECT = {
    Level.STUDY: "st.study_uid, NULL, NULL, st.attrs, NULL, NULL, st.n_series, st.n_instances, 0",
    Level.SERIES: "st.study_uid, se.series_uid, NULL, st.attrs, se.attrs, NULL, st.n_series, "
                  "st.n_instances, se.n_instances",
    Level.INSTANCE: "st.study_uid, se.series_uid, i.sop_uid, st.attrs, se.attrs, i.metadata, "
                    "st.n_series, st.n_instances, se.n_instances",
}
# Where `locate`, `metadata`, `delete` and `metrics` find a study's, series' or instance's
# instances, in series number and instance number order.
SCOPE_FROM = _FROM[Level.INSTANCE]
SCOPE_ORDER = "ORDER BY se.series_number NULLS FIRST, se.pk, i.instance_number NULLS FIRST, i.pk"


def build_search(dialect: Dialect, store_id: int, query: Query) -> Sql:
    """SELECT for one page of `query` (one row more than `limit`, to tell if more exist)."""
    # The store is named on the study, at every level: the planner then starts from the
    # study's indexes and reaches series and instances by their parent, rather than walking
    # every instance of the store (without ANALYZE statistics it otherwise did).
    params = dialect.params()
    where = [f"st.store_id = {params(store_id)}"]
    if query.study_uid is not None:
        where.append(f"st.study_uid = {params(query.study_uid)}")
    if query.series_uid is not None:
        where.append(f"se.series_uid = {params(query.series_uid)}")
    where += [_match(dialect, match, params) for match in query.matches]
    # The page is chosen over keys alone, and only its rows are then read whole: the rows an
    # offset skips cost an index step each, not their JSON and computed attributes.
    alias, order, tables = _ALIAS[query.level], _ORDER[query.level], _FROM[query.level]
    page = (f"SELECT {alias}.pk FROM {tables} WHERE {' AND '.join(where)} "
            f"ORDER BY {order} LIMIT {params(query.limit + 1)} OFFSET {params(query.offset)}")
    computed = (
        f"(SELECT {dialect.distinct_values('m.modality')} FROM series m "
        "WHERE m.study_pk = st.pk), "
        f"(SELECT {dialect.distinct_values('c.sop_class_uid')} FROM instances c "
        "WHERE c.study_pk = st.pk)")
    sql = (f"SELECT {_SELECT[query.level]}, {computed} FROM {tables} "
           f"WHERE {alias}.pk IN ({page}) ORDER BY {order}")
    return sql, params.values


def search_row(r: Any) -> SearchRow:
    """A row of `build_search`'s SELECT as the SearchRow it stands for."""
    return SearchRow(
        study_uid=r[0], series_uid=r[1], sop_uid=r[2],
        study_attrs=r[3].encode(), series_attrs=None if r[4] is None else r[4].encode(),
        instance_attrs=None if r[5] is None else r[5].encode(),
        study_series=r[6], study_instances=r[7], series_instances=r[8],
        modalities=tuple(r[9].split(",")) if r[9] else (),
        sop_classes=tuple(r[10].split(",")) if r[10] else (),
    )


def scope(params: Params, store_id: int, study: str, series: str | None,
          instance: str | None) -> str:
    """The WHERE clause (over SCOPE_FROM) of the instances of a study, series or instance."""
    # the store is named on the study: the plan starts from (store_id, study_uid) and reads
    # only that study's instances, never the store's whole (store_id, sop_uid) index
    where = [f"st.store_id = {params(store_id)}", f"st.study_uid = {params(study)}"]
    if series is not None:
        where.append(f"se.series_uid = {params(series)}")
    if instance is not None:
        where.append(f"i.sop_uid = {params(instance)}")
    return " AND ".join(where)


def _match(dialect: Dialect, match: Match, params: Params) -> str:
    matcher = _MATCHERS[match.kind]
    if match.tag == MODALITIES_IN_STUDY:
        inner = matcher(dialect, "m.modality", match, params)
        return f"EXISTS (SELECT 1 FROM series m WHERE m.study_pk = st.pk AND {inner})"
    if match.tag == SOP_CLASSES_IN_STUDY:
        inner = matcher(dialect, "c.sop_class_uid", match, params)
        return f"EXISTS (SELECT 1 FROM instances c WHERE c.study_pk = st.pk AND {inner})"
    if _case_insensitive(match):
        folded = replace(match, values=tuple(value.casefold() for value in match.values))
        return matcher(dialect, _folded_expression(dialect, match), folded, params)
    return matcher(dialect, _expression(dialect, match), match, params)


def _case_insensitive(match: Match) -> bool:
    """Names match regardless of case (C.2.2.2.1 allows it; a viewer's search box sends
    what the user typed), as do descriptive texts under wildcards; Unicode case folding
    (Python's str.casefold), so that гусева* finds ГУСЕВА and jérôme JÉRÔME."""
    return (match.kind is MatchKind.FUZZY or (match.kind is MatchKind.SINGLE and match.vr == "PN")
            or (match.kind is MatchKind.WILDCARD and match.vr in CASE_INSENSITIVE_WILDCARD_VRS))


def _folded_expression(dialect: Dialect, match: Match) -> str:
    """The attribute case-folded: its folded column if it has one, else folded per row."""
    return FOLDED_COLUMNS.get(match.tag) or dialect.fold(_expression(dialect, match))


def _expression(dialect: Dialect, match: Match) -> str:
    """The indexed column, or the first value extracted from the level's stored JSON."""
    if match.tag in COLUMNS:
        return COLUMNS[match.tag][1]
    return dialect.json_value(_ATTRS[level_of(match.tag)], match.tag, match.vr)


def _single(dialect: Dialect, expr: str, match: Match, params: Params) -> str:
    """C.2.2.2.1; numbers by value (DICOM JSON keeps them as JSON numbers)."""
    if match.vr in NUMERIC_VRS:
        return f"{expr} = CAST({params(match.values[0])} AS NUMERIC)"
    return f"{expr} = {params(match.values[0])}"


def _list(dialect: Dialect, expr: str, match: Match, params: Params) -> str:
    """C.2.2.2.2 List of UID matching."""
    return f"{expr} IN ({', '.join(params(value) for value in match.values)})"


def _wildcard(dialect: Dialect, expr: str, match: Match, params: Params) -> str:
    """C.2.2.2.3: `*` any run, `?` one character. Names and descriptive text (already case
    folded) by LIKE; codes and the rest exactly (the dialect's case-sensitive match)."""
    pattern = match.values[0]
    if match.vr in CASE_INSENSITIVE_WILDCARD_VRS:
        return dialect.folded_like(expr, pattern, params)
    return dialect.exact_wildcard(expr, pattern, params)


def _range(dialect: Dialect, expr: str, match: Match, params: Params) -> str:
    """C.2.2.2.5 Range matching of dates, times and date-times (either end may be open)."""
    low, high = match.values
    clauses: list[str] = []
    if low:
        clauses.append(f"{expr} >= {params(low)}")
    if high:
        high = high + "\uffff" if len(high) < 8 or match.vr != "DA" else high
        clauses.append(f"{expr} <= {params(high)}")
    return " AND ".join(clauses) or "TRUE"


def _fuzzy(dialect: Dialect, expr: str, match: Match, params: Params) -> str:
    """Any query token is a case-insensitive prefix of a name component."""
    clauses: list[str] = []
    for token in match.values:
        escaped = token.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        for lead in ("", "%^", "% ", "%="):
            clauses.append(f"{expr} LIKE {params(f'{lead}{escaped}%')} ESCAPE '\\'")
    return f"({' OR '.join(clauses)})"


_MATCHERS: dict[MatchKind, Callable[[Dialect, str, Match, Params], str]] = {
    MatchKind.SINGLE: _single,
    MatchKind.LIST: _list,
    MatchKind.WILDCARD: _wildcard,
    MatchKind.RANGE: _range,
    MatchKind.FUZZY: _fuzzy,
}
