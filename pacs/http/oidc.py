"""OpenID Connect bearer tokens (RFC 7519 JWTs, RFC 7517 key sets), as Keycloak issues them:
RS256 or ES256 signatures checked against the issuer's keys (found by `kid`, refetched when a
new `kid` appears, so keys rotate), `iss`, `aud`, `exp` and `nbf` with a little clock skew.
The identity is `user:` + a claim (`email` by default); realm roles may map to Google roles on
resources (`--oidc-role-map`)."""

import json
from pathlib import Path
from typing import Any

import anyio.to_thread
import jwt

from pacs.service.errors import Unauthenticated
from pacs.service.iam import Caller
from pacs.settings import Settings

ALGORITHMS = ("RS256", "ES256")
CLOCK_SKEW_SECONDS = 30
JWKS_CACHE_SECONDS = 300


class OidcVerifier:
    """Turns an OIDC access token into a Caller, or raises Unauthenticated."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: jwt.PyJWKClient | None = None
        self._file: Path | None = None
        self._file_keys: dict[str | None, Any] = {}
        if settings.oidc_jwks.startswith(("https://", "http://")):
            self._client = jwt.PyJWKClient(
                settings.oidc_jwks, cache_keys=True, lifespan=JWKS_CACHE_SECONDS,
                cooldown_duration=settings.oidc_jwks_refresh_seconds)
        else:
            self._file = Path(settings.oidc_jwks)
            self._read_file()

    async def caller(self, token: str, invalid: str) -> Caller:
        """The token's caller; Unauthenticated(`invalid`) for any token that does not verify."""
        settings = self._settings
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = await self._key(kid)
            claims = jwt.decode(token, key, algorithms=list(ALGORITHMS),
                                audience=settings.oidc_audience, issuer=settings.oidc_issuer,
                                leeway=CLOCK_SKEW_SECONDS,
                                options={"require": ["exp", "iss", "aud"]})
        except (jwt.PyJWTError, KeyError) as exc:
            raise Unauthenticated(invalid) from exc
        identity = claims.get(settings.oidc_identity_claim)
        if not isinstance(identity, str) or not identity:
            raise Unauthenticated(invalid)
        roles = _claim(claims, settings.oidc_roles_claim) if settings.oidc_roles_claim else []
        grants = tuple((resource, role) for token_role, resource, role in settings.oidc_role_map
                       if isinstance(roles, list) and token_role in roles)
        return Caller(f"user:{identity}", grants)

    async def _key(self, kid: Any) -> Any:
        if self._client is not None:
            client = self._client
            signing = await anyio.to_thread.run_sync(client.get_signing_key, kid)
            return signing.key
        if kid not in self._file_keys:
            self._read_file()  # the operator may have rotated the keys in the file
        return self._file_keys[kid].key

    def _read_file(self) -> None:
        assert self._file is not None
        keys = jwt.PyJWKSet.from_dict(json.loads(self._file.read_text())).keys
        self._file_keys = {key.key_id: key for key in keys}


def _claim(claims: dict[str, Any], path: str) -> Any:
    """The claim at a dotted path (`realm_access.roles`), or None."""
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
