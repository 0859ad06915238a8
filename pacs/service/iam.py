"""Authorization as the Cloud Healthcare API does it (spec 6.2-6.3): permissions on
resources, granted through roles. A caller is an identity in Google's member syntax
(`user:alice@example.com`, `serviceAccount:…`); administrators (`pacs serve --admin`) hold
every permission. Policies on a project, a dataset or a store grant roles to members on
everything under them. With authentication off (the default, on loopback only) everyone may
do everything."""

import base64
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import orjson

from pacs.service.errors import Aborted, InvalidArgument, PermissionDenied, Unauthenticated
from pacs.settings import Settings
from storage.protocols import InstanceIndex

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


AUTHENTICATED = "authenticated"  # a "permission" any caller with a credential holds
MEMBER_KINDS = ("user:", "serviceAccount:", "group:", "domain:", "allUsers",
                "allAuthenticatedUsers")
POLICY_TTL = 2.0  # seconds a policy read from the index is used before it is read again


@dataclass(frozen=True)
class Caller:
    """Who is asking: an identity in Google's member syntax, or None (no credential), and
    the roles its credential itself grants, as (resource, role) pairs (OIDC realm roles)."""

    identity: str | None
    grants: tuple[tuple[str, str], ...] = ()


def ancestors(resource: str) -> list[str]:
    """`resource` and what it is under, where policies apply: the store, its dataset, its
    project (projects/P/locations/L/datasets/D/dicomStores/S)."""
    parts = resource.split("/")
    return ["/".join(parts[:n]) for n in (8, 6, 2) if len(parts) >= n]


class Policies:
    """IAM policies of projects, datasets and stores (Google's shape: version, bindings of
    a role to members, etag), read through a short cache."""

    def __init__(self, index: InstanceIndex) -> None:
        self._index = index
        self._known: dict[str, tuple[dict[str, Any], float]] = {}

    async def get(self, resource: str) -> dict[str, Any]:
        known = self._known.get(resource)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        body = await self._index.get_policy(resource)
        policy: dict[str, Any] = orjson.loads(body) if body else {"version": 1, "bindings": []}
        policy["etag"] = _etag(policy)
        self._known[resource] = (policy, time.monotonic() + POLICY_TTL)
        return policy

    def forget_all(self) -> None:
        """Stop remembering every policy (one changed, through another replica perhaps)."""
        self._known.clear()

    async def set(self, resource: str, policy: Any) -> dict[str, Any]:
        """Replace the policy; ABORTED if its etag is not the current one (read-modify-write),
        INVALID_ARGUMENT for an unknown role or a malformed member."""
        if not isinstance(policy, dict):
            raise InvalidArgument("the policy must be a JSON object")
        current = await self.get(resource)
        if policy.get("etag") not in (None, current["etag"]):
            raise Aborted("the policy was changed since it was read: read it again and "
                          "apply the change to that (etag mismatch)")
        bindings = policy.get("bindings") or []
        if not isinstance(bindings, list):
            raise InvalidArgument("bindings must be a list of {role, members} objects")
        for binding in bindings:
            if not isinstance(binding, dict) or binding.get("role") not in ROLES:
                raise InvalidArgument(f"unknown role in binding {str(binding)[:80]}; the roles "
                                      f"are {', '.join(ROLES)}")
            members = binding.get("members")
            if not isinstance(members, list) or not all(
                    isinstance(m, str) and m.startswith(MEMBER_KINDS) for m in members):
                raise InvalidArgument(f"members of {binding['role']} must be a list in "
                                      "Google's member syntax (user:…, serviceAccount:…)")
        stored = {"version": 1, "bindings": [{"role": b["role"], "members": b["members"]}
                                             for b in bindings]}
        await self._index.set_policy(resource, orjson.dumps(stored).decode())
        self._known.pop(resource, None)
        return await self.get(resource)

    async def permissions(self, caller: Caller, resource: str) -> frozenset[str]:
        """Every permission the caller's roles grant on `resource` or above it."""
        granted: set[str] = set()
        scopes = ancestors(resource)
        for scope, role in caller.grants:
            if scope in scopes:
                granted |= ROLES[role]
        for scope in scopes:
            for binding in (await self.get(scope))["bindings"]:
                members = binding["members"]
                if caller.identity in members or "allUsers" in members or (
                        caller.identity is not None and "allAuthenticatedUsers" in members):
                    granted |= ROLES[binding["role"]]
        return frozenset(granted)


def _etag(policy: dict[str, Any]) -> str:
    digest = hashlib.sha256(orjson.dumps(policy.get("bindings", []))).digest()[:8]
    return base64.b64encode(digest).decode()


async def authorize(settings: Settings, policies: Policies, caller: Caller, permission: str,
                    resource: str) -> None:
    """Nothing if `caller` may use `permission` on `resource`; else Unauthenticated (no
    credential) or PermissionDenied with Google's message, the same whether or not the
    resource exists, so names do not leak."""
    if not settings.authentication:
        return
    if caller.identity is None:
        raise Unauthenticated("Request is missing required authentication credential. "
                              "Expected OAuth 2 access token, login cookie or other valid "
                              "authentication credential.")
    if caller.identity in settings.admins or permission == AUTHENTICATED or \
            permission in await policies.permissions(caller, resource):
        return
    raise PermissionDenied(f"Permission '{permission}' denied on resource '{resource}' (or "
                           "it may not exist).")


async def held_permissions(settings: Settings, policies: Policies, caller: Caller,
                           resource: str, asked: Any) -> dict[str, Any]:
    """Google's testIamPermissions: which of the asked permissions the caller holds."""
    if not isinstance(asked, list) or not all(isinstance(p, str) for p in asked):
        raise InvalidArgument("permissions must be a list of permission names")
    if not settings.authentication or caller.identity in settings.admins:
        held = asked
    else:
        granted = await policies.permissions(caller, resource)
        held = [p for p in asked if p in granted]
    return {"permissions": held} if held else {}
