"""How PostgreSQL spells what the shared query builder (`storage/index/query_builder.py`)
leaves to each dialect."""

from storage.index.query_builder import Dialect, Params, like_pattern
from storage.query import NUMERIC_VRS

# DS and IS syntax (PS3.5 6.2): only such text is read as a number, as SQLite's numeric
# affinity does, instead of failing the whole query on one stored value.
_NUMBER = r"'^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$'"


def _json_value(column: str, tag: int, vr: str) -> str:
    """The first value, as SQLite's json_extract gives it: numbers as numbers, text compared
    byte by byte (the "C" collation of every text column)."""
    path = f"'{{{tag:08X},Value,0,Alphabetic}}'" if vr == "PN" else f"'{{{tag:08X},Value,0}}'"
    text = f"({column}::json #>> {path})"
    if vr in NUMERIC_VRS:
        return f"(CASE WHEN {text} ~ {_NUMBER} THEN {text}::numeric END)"
    return f'({text} COLLATE "C")'


def _exact_wildcard(expr: str, pattern: str, params: Params) -> str:
    """LIKE is case-sensitive here (SQLite needs GLOB for that)."""
    return f"{expr} LIKE {params(like_pattern(pattern))} ESCAPE '\\'"


POSTGRES = Dialect(
    placeholder=lambda n: f"${n}",
    fold=lambda expr: f"pacs_casefold({expr})",  # migrations.casefold_function
    json_value=_json_value,
    exact_wildcard=_exact_wildcard,
    distinct_values=lambda expr: f"string_agg(DISTINCT {expr}, ',')",
)
