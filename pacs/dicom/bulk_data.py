"""Bulk data definitions: which elements a metadata answer leaves out, each replaced by a
BulkDataURI (PS3.18 8.7.3.1 leaves the choice to the origin server). Pixel data elements are
bulk data under every definition."""

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class BulkDataDefinition:
    """`always` VRs are bulk at any length; `large` VRs beyond `large_bytes`; the numeric
    VRs of `arrays` (VR → bytes per value) beyond `array_values` values."""

    always: frozenset[str]
    large: frozenset[str]
    large_bytes: int
    arrays: Mapping[str, int]
    array_values: int

    def covers(self, vr: str, length: int) -> bool:
        """Whether a value of `vr` and `length` bytes is bulk data."""
        if vr in self.always:
            return True
        if vr in self.large:
            return length > self.large_bytes
        size = self.arrays.get(vr)
        return size is not None and length > size * self.array_values


# The Cloud Healthcare API conformance statement's definition (seed 002, spec 4.6).
GOOGLE_BULK_DATA = BulkDataDefinition(
    always=frozenset({"OB", "OW", "UN"}),
    large=frozenset({"OD", "OF", "OL", "OV"}), large_bytes=2048,
    arrays={"AT": 4, "FD": 8, "FL": 4, "UL": 4, "US": 2, "SV": 8, "UV": 8}, array_values=512,
)
