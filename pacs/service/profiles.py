"""Store profiles: every behaviour in which a store of one profile differs from another.
Code asks the store's profile; nothing else tests which profile a store has.

`full` is the whole standard; `google` is Google's narrower behaviour and limits, from the
emulation spec (../shared/specs/google-healthcare-dicom.md), so that what passes against a
`google` store does not fail in the cloud.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from pacs.dicom.bulk_data import GOOGLE_BULK_DATA, BulkDataDefinition
from pacs.dicom.dicom_xml import NATIVE_DICOM_MODEL
from pacs.dicom.transfer_syntaxes import EXPLICIT_VR_BIG_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN
from pacs.service.failures import PROCESSING_FAILURE, FailureReason
from storage.query import Level, MatchKind

DICOM_XML = "application/dicom+xml"


# Attributes returned by default (PS3.18 Tables 10.6.3-3, -4 and -5).
STUDY_DEFAULTS = frozenset({
    0x00080005, 0x00080020, 0x00080030, 0x00080050, 0x00080056, 0x00080061, 0x00080090,
    0x00080201, 0x00081190, 0x00100010, 0x00100020, 0x00100030, 0x00100040, 0x0020000D,
    0x00200010, 0x00201206, 0x00201208,
})
SERIES_DEFAULTS = frozenset({
    0x00080005, 0x00080060, 0x00080201, 0x0008103E, 0x00081190, 0x0020000D, 0x0020000E,
    0x00200011, 0x00201209, 0x00400244, 0x00400245, 0x00400275,
})
INSTANCE_DEFAULTS = frozenset({
    0x00080005, 0x00080016, 0x00080018, 0x00080056, 0x00080201, 0x00081190, 0x0020000D,
    0x0020000E, 0x00080060, 0x00200013, 0x00280008, 0x00280010, 0x00280011, 0x00280100,
})
PS3_18_DEFAULTS = {Level.STUDY: STUDY_DEFAULTS, Level.SERIES: SERIES_DEFAULTS,
                   Level.INSTANCE: INSTANCE_DEFAULTS}
# Google's default attributes (spec 3.6); computed ones are returned when asked for.
GOOGLE_DEFAULTS = {
    Level.STUDY: frozenset({0x00080005, 0x00080020, 0x00080030, 0x00080050, 0x00080056,
                            0x00080090, 0x00080201, 0x00100010, 0x00100020, 0x00100030,
                            0x00100040, 0x0020000D, 0x00200010}),
    Level.SERIES: frozenset({0x00080005, 0x00080060, 0x00080201, 0x0008103E, 0x0020000E,
                             0x00400244, 0x00400245, 0x00400275}),
    Level.INSTANCE: frozenset({0x00080005, 0x00080016, 0x00080018, 0x00080056, 0x00080201,
                               0x00200013, 0x00280010, 0x00280011, 0x00280100, 0x00280008}),
}


@dataclass(frozen=True)
class SearchLimits:
    """Results per page when a query gives no `limit`, and the most it may ask for."""

    default: int
    maximum: int


@dataclass(frozen=True)
class Profile:
    """The behaviours that differ between profiles."""

    name: str
    bulk_data: BulkDataDefinition  # which elements metadata gives as BulkDataURIs
    search_limits: Mapping[Level, SearchLimits]  # per query level (PS3.18 8.3.4.4)
    max_search_offset: int
    warn_more_results: bool  # a Warning header when results beyond the page exist (8.3.4.4)
    store_response_type: str  # a Store response's media type when Accept names none
    xml_namespace: str | None  # of <NativeDicomModel> answers (None: a bare root)
    unrequestable_syntaxes: frozenset[str]  # never produced on request (PS3.18 8.7.3)
    rendered_levels: frozenset[str]  # resources with /rendered
    thumbnail_levels: frozenset[str]  # resources with /thumbnail (Sup 203)
    rendered_parameters: frozenset[str] | None  # query parameters read (None: all of 8.3.5)
    search_keys: Mapping[Level, frozenset[int]] | None  # match keys accepted (None: any)
    search_defaults: Mapping[Level, frozenset[int]]  # attributes results carry unasked
    match_kinds: frozenset[MatchKind]  # matching types (PS3.4 C.2.2.2); others are literal
    partial_store_status: int  # a Store response when some instances failed (PS3.18 10.5.3)
    delete_operations: bool  # a study or series delete answers a long-running operation
    failure_reason: FailureReason | None  # reported for every Store failure (None: its own)
    duplicate_data_set: bool  # an instance again is a duplicate if its data set is the same
    # (else only if its whole file is: pacs/service/same_instance.py)


_ALL_LEVELS = {level: SearchLimits(1000, 10_000) for level in Level}

FULL = Profile(
    name="full",
    bulk_data=GOOGLE_BULK_DATA,
    search_limits=_ALL_LEVELS,
    max_search_offset=2**63 - 1,  # SQLite's largest integer; beyond it nothing matches anyway
    warn_more_results=True,
    store_response_type=DICOM_XML,  # the shape Google returns, which clients written for it read
    xml_namespace=NATIVE_DICOM_MODEL,  # PS3.19 A.1
    # "shall not be used with Web Services" (PS3.18 8.7.3); as stored they still go out
    unrequestable_syntaxes=frozenset({IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN}),
    rendered_levels=frozenset({"study", "series", "instance", "frames"}),
    thumbnail_levels=frozenset({"study", "series", "instance", "frames"}),
    rendered_parameters=None,
    search_keys=None,
    search_defaults=PS3_18_DEFAULTS,
    match_kinds=frozenset(MatchKind),
    partial_store_status=202,
    delete_operations=False,
    failure_reason=None,
    duplicate_data_set=True,
)

# Google's documented match keys (spec 3.2): each level takes those of the levels above.
_GOOGLE_STUDY_KEYS = frozenset({0x0020000D, 0x00100010, 0x00100020, 0x00080050, 0x00080090,
                                0x00080020})
_GOOGLE_SERIES_KEYS = _GOOGLE_STUDY_KEYS | {0x0020000E, 0x00080060}

GOOGLE = Profile(
    name="google",
    bulk_data=GOOGLE_BULK_DATA,
    # spec 3.5: 100 studies or series by default (at most 5,000), 1,000 instances (50,000)
    search_limits={Level.STUDY: SearchLimits(100, 5000), Level.SERIES: SearchLimits(100, 5000),
                   Level.INSTANCE: SearchLimits(1000, 50_000)},
    max_search_offset=1_000_000,
    warn_more_results=False,  # spec 3.5: no Warning header, ever
    store_response_type=DICOM_XML,
    xml_namespace=None,  # seed 002: a bare <NativeDicomModel> root
    unrequestable_syntaxes=frozenset({EXPLICIT_VR_BIG_ENDIAN}),  # spec 4.1 lists .1.2
    rendered_levels=frozenset({"instance", "frames"}),  # spec 4.3
    thumbnail_levels=frozenset(),
    rendered_parameters=frozenset({"viewport"}),  # spec 4.3: the others are ignored
    search_keys={Level.STUDY: _GOOGLE_STUDY_KEYS, Level.SERIES: _GOOGLE_SERIES_KEYS,
                 Level.INSTANCE: _GOOGLE_SERIES_KEYS | {0x00080018}},
    search_defaults=GOOGLE_DEFAULTS,
    # spec 3.3: exact matching, StudyDate ranges, PatientName fuzzy matching; no wildcards,
    # no UID lists (a list is matched as one literal value; a repeated key answers 400)
    match_kinds=frozenset({MatchKind.SINGLE, MatchKind.RANGE, MatchKind.FUZZY}),
    partial_store_status=409,  # spec 5.2: 409 when any instance fails
    delete_operations=True,  # spec 1.3: v1 and current v1beta1
    failure_reason=PROCESSING_FAILURE,  # spec 5.2: 272 whatever went wrong, with the detail
    duplicate_data_set=False,  # spec 5.2: identical content (MD5) only, else 409
)

PROFILES: dict[str, Profile] = {profile.name: profile for profile in (FULL, GOOGLE)}
