"""How PostgreSQL spells what the shared query builder (`storage/index/query_builder.py`)
leaves to each dialect."""

import re

from storage.index.query_builder import Dialect, Params, like
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


def _folded_like(expr: str, pattern: str, params: Params) -> str:
    """LIKE over folded text. A pattern with three literal characters in a row may use a
    trigram index (migrations 0004); a shorter one is kept from it (`|| ''` is no indexed
    expression): its trigrams would select nothing, and a generic plan would read the whole
    index, where walking the studies in order stops at the page's last match."""
    return like(expr if _TRIGRAM.search(pattern) else f"({expr} || '')", pattern, params)


_TRIGRAM = re.compile(r"[^*?]{3}")


POSTGRES = Dialect(
    placeholder=lambda n: f"${n}",
    fold=lambda expr: f"pacs_casefold({expr})",  # migrations.casefold_function
    json_value=_json_value,
    exact_wildcard=like,  # LIKE is case-sensitive here (SQLite needs GLOB for that)
    folded_like=_folded_like,
    distinct_values=lambda expr: f"string_agg(DISTINCT {expr}, ',')",
)
