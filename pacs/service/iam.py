"""Authorization as the Cloud Healthcare API does it (spec 6.2-6.3): permissions on
resources, granted through roles. A caller is an identity in Google's member syntax
(`user:alice@example.com`, `serviceAccount:…`); administrators (`pacs serve --admin`) hold
every permission. With authentication off (the default, on loopback only) everyone may do
everything."""

from dataclasses import dataclass

from pacs.service.errors import PermissionDenied, Unauthenticated
from pacs.settings import Settings

# Google's predefined roles and the DICOM-relevant permissions they grant (spec 6.3).
_LOCATIONS = frozenset({"healthcare.locations.get", "healthcare.locations.list",
                        "resourcemanager.projects.get", "resourcemanager.projects.list"})
_DATASET_READ = frozenset({"healthcare.datasets.get", "healthcare.datasets.list"}) | _LOCATIONS
_STORE_READ = frozenset({"healthcare.dicomStores.get", "healthcare.dicomStores.list"})
ROLES: dict[str, frozenset[str]] = {
    "roles/healthcare.dicomViewer": _DATASET_READ | _STORE_READ | {
        "healthcare.dicomStores.dicomWebRead", "healthcare.dicomStores.export",
        "healthcare.operations.get"},
    "roles/healthcare.dicomEditor": _DATASET_READ | _STORE_READ | {
        "healthcare.dicomStores.dicomWebRead", "healthcare.dicomStores.dicomWebWrite",
        "healthcare.dicomStores.dicomWebDelete", "healthcare.dicomStores.dicomWebUpdate",
        "healthcare.dicomStores.export", "healthcare.dicomStores.import",
        "healthcare.operations.get", "healthcare.operations.cancel"},
    "roles/healthcare.dicomStoreViewer": _DATASET_READ | _STORE_READ | {
        "healthcare.operations.get"},
    "roles/healthcare.dicomStoreAdmin": _DATASET_READ | _STORE_READ | {
        "healthcare.dicomStores.create", "healthcare.dicomStores.deidentify",
        "healthcare.dicomStores.delete", "healthcare.dicomStores.dicomWebDelete",
        "healthcare.dicomStores.getIamPolicy", "healthcare.dicomStores.setIamPolicy",
        "healthcare.dicomStores.update", "healthcare.operations.get",
        "healthcare.operations.cancel"},
    "roles/healthcare.datasetViewer": _DATASET_READ | {"healthcare.operations.get"},
    "roles/healthcare.datasetAdmin": _DATASET_READ | {
        "healthcare.datasets.create", "healthcare.datasets.deidentify",
        "healthcare.datasets.delete", "healthcare.datasets.getIamPolicy",
        "healthcare.datasets.setIamPolicy", "healthcare.datasets.update",
        "healthcare.operations.get", "healthcare.operations.list",
        "healthcare.operations.cancel"},
}


@dataclass(frozen=True)
class Caller:
    """Who is asking: an identity in Google's member syntax, or None (no credential)."""

    identity: str | None


def authorize(settings: Settings, caller: Caller, permission: str, resource: str) -> None:
    """Nothing if `caller` may use `permission` on `resource`; else Unauthenticated (no
    credential) or PermissionDenied with Google's message, the same whether or not the
    resource exists, so names do not leak."""
    if not settings.authentication:
        return
    if caller.identity is None:
        raise Unauthenticated("Request is missing required authentication credential. "
                              "Expected OAuth 2 access token, login cookie or other valid "
                              "authentication credential.")
    if caller.identity in settings.admins:
        return
    raise PermissionDenied(f"Permission '{permission}' denied on resource '{resource}' (or "
                           "it may not exist).")
