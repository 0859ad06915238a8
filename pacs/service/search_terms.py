"""Search terms → Query: QIDO-RS query parameters (PS3.18 8.3.4) and a C-FIND identifier's
keys alike (as (key, value) pairs), matching per PS3.4 C.2.2.2.

QIDO values arrive percent-decoded (Starlette decodes before we split on commas), so OHIF's
`includefield=00081030%2C00080060` is two fields.
"""

import re
from collections.abc import Iterable

from pydicom.datadict import keyword_for_tag, tag_for_keyword

from pacs.ascii_numbers import ascii_int
from pacs.dicom.tags import vr_of
from pacs.dicom.temporal import is_temporal, temporal_form
from pacs.dicom.uids import is_valid_uid
from pacs.service.errors import InvalidArgument
from pacs.service.profiles import Profile
from pacs.service.search import SearchRequest
from storage.levels import level_of
from storage.query import NUMERIC_VRS, Level, Match, MatchKind, Query

# Google system parameters, accepted on every call and ignored here (seed 002, spec 1.1).
IGNORED_PARAMETERS = frozenset({
    "access_token", "alt", "fields", "prettyPrint", "quotaUser", "$.xgafv", "callback", "key",
    "oauth_token", "uploadType", "upload_protocol",
})
_HEX_TAG = re.compile(r"[0-9A-Fa-f]{8}")
_LIST_VRS = frozenset({"UI", "CS"})
_FUZZY_SEPARATORS = re.compile(r"[\s^=,]+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")  # DS / IS syntax (PS3.5 6.2)

def attribute_tag(key: str) -> int:
    """Tag of a keyword or 8-hex tag; 400 naming the key if it is neither."""
    if not key:
        raise InvalidArgument("a query parameter has an empty name")
    if _HEX_TAG.fullmatch(key):
        return int(key, 16)
    tag = tag_for_keyword(key)
    if tag is None:
        raise InvalidArgument(f"unknown/unsupported QIDO attribute: {key}")
    return int(tag)


def parse_search(params: Iterable[tuple[str, str]], level: Level, profile: Profile,
                 study_uid: str | None = None, series_uid: str | None = None, *,
                 max_includefields: int | None = None) -> SearchRequest:
    """Validate and parse the query string of a search at `level` in a store of `profile`;
    400 when includefield names more than `max_includefields` attributes (`all` is one)."""
    items = list(params)
    fuzzy = any(k == "fuzzymatching" and v.lower() == "true" for k, v in items)
    limits = profile.search_limits[level]
    limit, offset = limits.default, 0
    include: set[int] = set()
    include_all = False
    included = 0
    matches: list[Match] = []
    keys: set[int] = set()
    for key, value in items:
        if key in IGNORED_PARAMETERS or key == "fuzzymatching":
            continue
        if key == "limit":
            limit = min(_count(key, value, minimum=1), limits.maximum)
        elif key == "offset":
            offset = min(_count(key, value, minimum=0), profile.max_search_offset)
        elif key == "includefield":
            fields = [f for f in (f.strip() for f in value.split(",")) if f]
            included += len(fields)
            if max_includefields is not None and included > max_includefields:
                raise InvalidArgument(f"includefield names more than {max_includefields} "
                                      f"attributes; at most {max_includefields} are read "
                                      "(includefield=all asks for every one)")
            for field in fields:
                if field == "all":
                    include_all = True
                else:
                    include.add(attribute_tag(field))
        else:
            tag = _match_key(key, level, profile)
            if tag in keys and MatchKind.LIST not in profile.match_kinds:
                raise InvalidArgument(f"{key} is given more than once; a {profile.name} store "
                                      "matches one value per key")
            keys.add(tag)
            include.add(tag)
            match = _match(key, tag, value, fuzzy)
            if match is not None and match.kind not in profile.match_kinds:
                # matched literally, as the only matching the profile has (Google, spec 3.3)
                match = Match(tag, match.vr, MatchKind.SINGLE, (value.strip(),))
            if match is not None:
                matches.append(match)
    query = Query(level, tuple(matches), study_uid, series_uid, limit, offset)
    return SearchRequest(query, frozenset(include), include_all)


def _match_key(key: str, level: Level, profile: Profile) -> int:
    """The tag of a match key the profile searches by at `level`; 400 saying why not."""
    if "." in key:
        raise InvalidArgument(f"unknown/unsupported QIDO attribute: {key} (sequence "
                              "matching is not supported)")
    tag = attribute_tag(key)
    if level_of(tag).value > level.value:
        raise InvalidArgument(f"{key} is not an attribute of this query level "
                              f"({level.name.lower()})")
    if profile.search_keys is not None and tag not in profile.search_keys[level]:
        raise InvalidArgument(f"unknown/unsupported QIDO attribute: {key} (a "
                              f"{profile.name} store searches by "
                              f"{_keywords(profile.search_keys[level])} at the "
                              f"{level.name.lower()} level)")
    return tag


def _keywords(tags: frozenset[int]) -> str:
    return ", ".join(sorted(keyword_for_tag(tag) or f"{tag:08X}" for tag in tags))


def _count(key: str, value: str, minimum: int) -> int:
    number = ascii_int(value)
    if number is None or number < minimum:
        raise InvalidArgument(f"{key} must be an integer of at least {minimum}, not {value!r}")
    return number


def _temporal(key: str, tag: int, vr: str, value: str, form: str) -> Match:
    """A single date or time, or a range of them (PS3.4 C.2.2.2.5), each end in its VR's
    form (PS3.5 6.2); 400 naming the key and the form otherwise."""
    low, dash, high = (part.strip() for part in value.partition("-"))
    ends = [end for end in (low, high) if end] if dash else [value]
    if not ends or not all(is_temporal(vr, end) for end in ends):
        raise InvalidArgument(f"{key} is a {vr}: {value[:80]!r} is not {form}, nor a range "
                              "of such values joined by '-' (PS3.5 6.2, PS3.4 C.2.2.2.5)")
    if dash:
        return Match(tag, vr, MatchKind.RANGE, (low, high))
    return Match(tag, vr, MatchKind.SINGLE, (value,))


def _match(key: str, tag: int, value: str, fuzzy: bool) -> Match | None:
    """The matching type the value asks for (PS3.4 C.2.2.2); None for universal matching."""
    value = value.strip()
    if not value or value == "*":
        return None
    vr = vr_of(tag)
    if vr == "UI":
        uids = tuple(u.strip() for u in re.split(r"[\\,]", value) if u.strip())
        bad = [u for u in uids if not is_valid_uid(u)]
        if bad:
            raise InvalidArgument(f"invalid UID {bad[0][:80]!r} in {key}")
        if not uids:
            raise InvalidArgument(f"{key} lists no UID: {value[:80]!r}")
        return Match(tag, vr, MatchKind.LIST if len(uids) > 1 else MatchKind.SINGLE, uids)
    form = temporal_form(vr)
    if form is not None:
        return _temporal(key, tag, vr, value, form)
    if "*" in value or "?" in value:
        return Match(tag, vr, MatchKind.WILDCARD, (value,))
    if vr == "PN" and fuzzy:
        tokens = tuple(t for t in _FUZZY_SEPARATORS.split(value) if t)
        # separators alone (`^`) name no token: every name matches
        return Match(tag, vr, MatchKind.FUZZY, tokens) if tokens else None
    if vr in _LIST_VRS and "\\" in value:
        values = tuple(v for v in value.split("\\") if v)
        return Match(tag, vr, MatchKind.LIST, values) if values else None
    if vr in NUMERIC_VRS and not _NUMBER.fullmatch(value):
        raise InvalidArgument(f"{key} holds numbers ({vr}); {value[:80]!r} is not one")
    return Match(tag, vr, MatchKind.SINGLE, (value,))
