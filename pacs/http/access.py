"""Who is asking, and the one check every route's declared permission goes through: the
credential is a bearer token, in the Authorization header or the `access_token` query
parameter (Google accepts both); the resource is named from the path as Google names it.
Tokens are compared, never logged."""

from dataclasses import dataclass

from starlette.requests import Request

from pacs.http.oidc import OidcVerifier
from pacs.names import StoreName
from pacs.service.archive import Archive
from pacs.service.errors import InvalidArgument, Unauthenticated
from pacs.service.iam import Caller, authorize
from pacs.settings import Settings

INVALID = ("Request had invalid authentication credentials. Expected OAuth 2 access token, "
           "login cookie or other valid authentication credential. See "
           "https://developers.google.com/identity/sign-in/web/devconsole-project.")
_COLLECTIONS = (("project", "projects"), ("location", "locations"), ("dataset", "datasets"),
                ("store", "dicomStores"))


@dataclass(frozen=True)
class Permission:
    """A permission (`healthcare.dicomStores.dicomWebRead`) and the kind of resource of the
    path it applies to: "project", "location", "dataset", "store", or "" for none."""

    name: str
    on: str


async def caller_of(request: Request, settings: Settings) -> Caller:
    """The caller the request's bearer token names (a token of `--auth-tokens`, else an OIDC
    JWT); Unauthenticated if it names none."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    token = token or request.query_params.get("access_token", "")
    if not token:
        return Caller(None)
    identity = dict(settings.auth_tokens).get(token)
    if identity is not None:
        return Caller(identity)
    oidc: OidcVerifier | None = request.app.state.oidc
    if oidc is None:
        raise Unauthenticated(INVALID)
    return await oidc.caller(token, INVALID)


def resource_of(request: Request, settings: Settings, on: str) -> str:
    """The name of the resource of kind `on` that the path addresses (the default store for
    `/dicomweb`)."""
    params = request.path_params
    if not on:
        return "projects"  # listing projects: no one resource
    if on == "store" and "store" not in params:
        return settings.default_store
    if on == "store":
        try:
            return str(StoreName.of(params))
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
    names = []
    for level, collection in _COLLECTIONS:
        names.append(f"{collection}/{params[level]}")
        if level == on:
            break
    return "/".join(names)


@dataclass
class Access:
    """What is known of a request's access as it is checked: who, asking which permission, on
    which resource (what the audit log records, even of a refusal)."""

    identity: str | None = None
    permission: str = ""
    resource: str = ""


async def check(request: Request, permission: Permission | None, access: Access) -> None:
    """Nothing if the caller may do what the route does; Unauthenticated or
    PermissionDenied otherwise, `access` filled as far as it got. Routes without a
    permission are public (/healthz)."""
    if permission is None:
        return
    archive: Archive = request.app.state.archive
    settings = archive.settings
    access.permission = permission.name
    access.resource = resource_of(request, settings, permission.on)
    if not settings.authentication:
        return  # authentication off: no credential is looked at
    caller = await caller_of(request, settings)
    access.identity = caller.identity
    await authorize(settings, archive.policies, caller, permission.name, access.resource)
