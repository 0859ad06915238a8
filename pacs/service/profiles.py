"""Store profiles: every behaviour in which a store of one profile differs from another.
Code asks the store's profile; nothing else tests which profile a store has.

`full` is the whole standard; `google` (filled in by the Cloud Healthcare API work) is
Google's narrower behaviour and limits.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from pacs.dicom.bulk_data import GOOGLE_BULK_DATA, BulkDataDefinition
from pacs.dicom.dicom_xml import NATIVE_DICOM_MODEL
from pacs.dicom.transfer_syntaxes import EXPLICIT_VR_BIG_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN
from storage.query import Level

DICOM_XML = "application/dicom+xml"


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
    rendered_levels: frozenset[str]  # resources with /rendered and /thumbnail


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
)

PROFILES: dict[str, Profile] = {profile.name: profile for profile in (FULL,)}
