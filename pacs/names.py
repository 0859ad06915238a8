"""The one grammar of DICOM store resource names, as the Cloud Healthcare API writes them:
`projects/P/locations/L/datasets/D/dicomStores/S`."""

import re
from collections.abc import Mapping
from dataclasses import dataclass

COLLECTIONS = ("projects", "locations", "datasets", "dicomStores")
# Google's resource IDs: letters, digits, underscores, hyphens and dots, 1 to 256 of them.
_ID = re.compile(r"[\w.\-]{1,256}")
# The store's path with one route parameter per ID, for a route table.
ROUTE = "/projects/{project}/locations/{location}/datasets/{dataset}/dicomStores/{store}"


def valid_id(value: str) -> bool:
    """Whether `value` is a valid project, location, dataset or store ID."""
    return _ID.fullmatch(value) is not None


@dataclass(frozen=True)
class StoreName:
    """The four IDs that name a DICOM store."""

    project: str
    location: str
    dataset: str
    store: str

    @classmethod
    def parse(cls, text: str) -> "StoreName":
        """`projects/P/locations/L/datasets/D/dicomStores/S` (outer slashes ignored);
        ValueError saying what is wrong."""
        parts = text.strip("/").split("/")
        if len(parts) != 8 or tuple(parts[0::2]) != COLLECTIONS:
            raise ValueError(f"{text!r} is not projects/P/locations/L/datasets/D/dicomStores/S")
        return cls.of(dict(zip(("project", "location", "dataset", "store"), parts[1::2],
                                strict=True)))

    @classmethod
    def of(cls, ids: Mapping[str, str]) -> "StoreName":
        """The name made of the IDs of a ROUTE match; ValueError for an invalid ID."""
        bad = [ids[key] for key in ("project", "location", "dataset", "store")
               if not valid_id(ids[key])]
        if bad:
            raise ValueError(f"{bad[0][:80]!r} is not a valid resource ID: use 1 to 256 "
                             "letters, digits, underscores, hyphens and dots")
        return cls(ids["project"], ids["location"], ids["dataset"], ids["store"])

    def __str__(self) -> str:
        return (f"projects/{self.project}/locations/{self.location}/datasets/{self.dataset}"
                f"/dicomStores/{self.store}")


DEFAULT_STORE = StoreName("local", "local", "default", "default")
