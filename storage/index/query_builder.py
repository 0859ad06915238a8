"""QIDO-RS query → parameterized SQL, one function per PS3.4 C.2.2.2 matching type.

Column names come only from the allow-list in `attributes.COLUMNS`; values are always
parameters; LIKE and GLOB patterns are escaped.
"""

from collections.abc import Callable
from dataclasses import replace

from storage.index.attributes import COLUMNS, FOLDED_COLUMNS
from storage.levels import MODALITIES_IN_STUDY, SOP_CLASSES_IN_STUDY, level_of
from storage.query import NUMERIC_VRS, Level, Match, MatchKind, Query

Sql = tuple[str, list[object]]
CASE_INSENSITIVE_WILDCARD_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC"})

_FROM = {
    Level.STUDY: "studies st",
    Level.SERIES: "series se JOIN studies st ON st.pk = se.study_pk",
    Level.INSTANCE: "instances i JOIN series se ON se.pk = i.series_pk "
                    "JOIN studies st ON st.pk = i.study_pk",
}
_ORDER = {
    Level.STUDY: "st.pk",
    Level.SERIES: "st.pk, se.series_number, se.pk",
    Level.INSTANCE: "st.pk, se.series_number, se.pk, i.instance_number, i.pk",
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
_COMPUTED = (
    "(SELECT group_concat(DISTINCT m.modality) FROM series m WHERE m.study_pk = st.pk), "
    "(SELECT group_concat(DISTINCT c.sop_class_uid) FROM instances c WHERE c.study_pk = st.pk)"
)


def build_search(store_id: int, query: Query) -> Sql:
    """SELECT for one page of `query` (one row more than `limit`, to tell if more exist)."""
    # The store is named on the study, at every level: the planner then starts from the
    # study's indexes and reaches series and instances by their parent, rather than walking
    # every instance of the store (without ANALYZE statistics it otherwise did).
    where = ["st.store_id = ?"]
    params: list[object] = [store_id]
    if query.study_uid is not None:
        where.append("st.study_uid = ?")
        params.append(query.study_uid)
    if query.series_uid is not None:
        where.append("se.series_uid = ?")
        params.append(query.series_uid)
    for match in query.matches:
        clause, values = _match(match)
        where.append(clause)
        params.extend(values)
    # The page is chosen over keys alone, and only its rows are then read whole: the rows an
    # offset skips cost an index step each, not their JSON and computed attributes.
    alias, order, tables = _ALIAS[query.level], _ORDER[query.level], _FROM[query.level]
    page = (f"SELECT {alias}.pk FROM {tables} WHERE {' AND '.join(where)} "
            f"ORDER BY {order} LIMIT ? OFFSET ?")
    sql = (f"SELECT {_SELECT[query.level]}, {_COMPUTED} FROM {tables} "
           f"WHERE {alias}.pk IN ({page}) ORDER BY {order}")
    params.extend([query.limit + 1, query.offset])
    return sql, params


def _match(match: Match) -> Sql:
    if match.tag == MODALITIES_IN_STUDY:
        inner, params = _MATCHERS[match.kind]("m.modality", match)
        return f"EXISTS (SELECT 1 FROM series m WHERE m.study_pk = st.pk AND {inner})", params
    if match.tag == SOP_CLASSES_IN_STUDY:
        inner, params = _MATCHERS[match.kind]("c.sop_class_uid", match)
        return (f"EXISTS (SELECT 1 FROM instances c WHERE c.study_pk = st.pk AND {inner})",
                params)
    if _case_insensitive(match):
        folded = replace(match, values=tuple(value.casefold() for value in match.values))
        return _MATCHERS[match.kind](_folded_expression(match), folded)
    return _MATCHERS[match.kind](_expression(match), match)


def _case_insensitive(match: Match) -> bool:
    """Names match regardless of case (C.2.2.2.1 allows it; a viewer's search box sends
    what the user typed), as do descriptive texts under wildcards; Unicode case folding
    (Python's str.casefold), so that гусева* finds ГУСЕВА and jérôme JÉRÔME."""
    return (match.kind is MatchKind.FUZZY or (match.kind is MatchKind.SINGLE and match.vr == "PN")
            or (match.kind is MatchKind.WILDCARD and match.vr in CASE_INSENSITIVE_WILDCARD_VRS))


def _folded_expression(match: Match) -> str:
    """The attribute case-folded: its folded column if it has one, else folded per row."""
    return FOLDED_COLUMNS.get(match.tag) or f"casefold({_expression(match)})"


def _expression(match: Match) -> str:
    """The indexed column, or the first value extracted from the level's stored JSON."""
    if match.tag in COLUMNS:
        return COLUMNS[match.tag][1]
    suffix = ".Alphabetic" if match.vr == "PN" else ""
    return f"json_extract({_ATTRS[level_of(match.tag)]}, '$.\"{match.tag:08X}\".Value[0]{suffix}')"


def _single(expr: str, match: Match) -> Sql:
    """C.2.2.2.1; numbers by value (DICOM JSON keeps them as JSON numbers)."""
    if match.vr in NUMERIC_VRS:
        return f"{expr} = CAST(? AS NUMERIC)", [match.values[0]]
    return f"{expr} = ?", [match.values[0]]


def _list(expr: str, match: Match) -> Sql:
    """C.2.2.2.2 List of UID matching."""
    return f"{expr} IN ({', '.join('?' * len(match.values))})", list(match.values)


def _wildcard(expr: str, match: Match) -> Sql:
    """C.2.2.2.3: `*` any run, `?` one character. Names and descriptive text (already case
    folded) by LIKE; codes and the rest exactly (GLOB)."""
    pattern = match.values[0]
    if match.vr in CASE_INSENSITIVE_WILDCARD_VRS:
        like = "".join({"*": "%", "?": "_", "%": "\\%", "_": "\\_", "\\": "\\\\"}.get(c, c)
                       for c in pattern)
        return f"{expr} LIKE ? ESCAPE '\\'", [like]
    return f"{expr} GLOB ?", ["".join("[[]" if c == "[" else c for c in pattern)]


def _range(expr: str, match: Match) -> Sql:
    """C.2.2.2.5 Range matching of dates, times and date-times (either end may be open)."""
    low, high = match.values
    clauses: list[str] = []
    params: list[object] = []
    if low:
        clauses.append(f"{expr} >= ?")
        params.append(low)
    if high:
        clauses.append(f"{expr} <= ?")
        params.append(high + "\uffff" if len(high) < 8 or match.vr != "DA" else high)
    return " AND ".join(clauses) or "1", params


def _fuzzy(expr: str, match: Match) -> Sql:
    """Any query token is a case-insensitive prefix of a name component."""
    clauses: list[str] = []
    params: list[object] = []
    for token in match.values:
        escaped = token.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        for lead in ("", "%^", "% ", "%="):
            clauses.append(f"{expr} LIKE ? ESCAPE '\\'")
            params.append(f"{lead}{escaped}%")
    return f"({' OR '.join(clauses)})", params


_MATCHERS: dict[MatchKind, Callable[[str, Match], Sql]] = {
    MatchKind.SINGLE: _single,
    MatchKind.LIST: _list,
    MatchKind.WILDCARD: _wildcard,
    MatchKind.RANGE: _range,
    MatchKind.FUZZY: _fuzzy,
}
