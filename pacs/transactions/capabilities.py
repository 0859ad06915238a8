"""Retrieve Capabilities transaction (PS3.18 8.9): OPTIONS on the service root describes every
resource, OPTIONS on a resource that resource, as WADL (the default) or JSON. The description
is generated from the route table, the representations each transaction negotiates, the
transfer-syntax table and the store's profile, so it cannot drift from what is served."""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

import orjson
from starlette.requests import Request
from starlette.responses import Response

from pacs.dicom.transfer_syntaxes import FRAME_SYNTAXES, INSTANCE_SYNTAXES
from pacs.http.addressing import links_of, store_of
from pacs.http.media_types import Offer, negotiate
from pacs.http.transaction import Handler, Transaction
from pacs.service.profiles import Profile
from storage.query import MatchKind

WADL = "application/vnd.sun.wadl+xml"
JSON = "application/json"
_OFFERS = (Offer(False, WADL), Offer(False, JSON))
WADL_NAMESPACE = "http://wadl.dev.java.net/2009/02"


@dataclass(frozen=True)
class Resource:
    """A path of the route table and the transaction of each of its methods."""

    path: str
    methods: Mapping[str, Transaction]

    @property
    def template(self) -> str:
        """The path as a URI template, without route converters (`{path:path}` → `{path}`)."""
        return re.sub(r":\w+}", "}", self.path)


def capabilities(resources: Sequence[Resource]) -> Handler:
    """The OPTIONS handler describing `resources` (all of them, at the service root)."""
    async def describe(request: Request) -> Response:
        choice = negotiate(request.headers.get("accept"), _OFFERS, [WADL, JSON])
        store = await store_of(request)
        root = links_of(request).root
        if choice.media_type == JSON:
            return Response(orjson.dumps(_json(resources, root, store.profile)),
                            media_type=JSON)
        return Response(_wadl(resources, root), media_type=WADL)
    return describe


def _representations(transaction: Transaction) -> list[str]:
    return [offer.describe() for offer in transaction.answers]


def _json(resources: Sequence[Resource], root: str, profile: Profile) -> dict[str, Any]:
    refused = profile.unrequestable_syntaxes
    return {
        "root": root,
        "profile": profile.name,
        "resources": [
            {"path": resource.template,
             "methods": [{"method": method, "transaction": transaction.name,
                          "answers": _representations(transaction),
                          **({"accepts": list(transaction.accepts)}
                             if transaction.accepts else {})}
                         for method, transaction in resource.methods.items()]}
            for resource in resources],
        "transferSyntaxes": {
            "instances": [s for s in INSTANCE_SYNTAXES if s not in refused],
            "frames": {media: [s for s in syntaxes if s not in refused]
                       for media, syntaxes in FRAME_SYNTAXES.items()},
        },
        "search": {
            "matching": [kind.value for kind in MatchKind],
            "limits": {level.name.lower(): {"default": limits.default,
                                            "maximum": limits.maximum}
                       for level, limits in profile.search_limits.items()},
            "maximumOffset": profile.max_search_offset,
        },
        "renderedResources": sorted(profile.rendered_levels),
    }


def _wadl(resources: Sequence[Resource], root: str) -> bytes:
    """The description as WADL (https://www.w3.org/Submission/wadl/)."""
    out = [f'<?xml version="1.0" encoding="UTF-8"?><application xmlns="{WADL_NAMESPACE}">'
           f"<resources base={quoteattr(root + '/')}>"]
    for resource in resources:
        out.append(f"<resource path={quoteattr(resource.template.lstrip('/'))}>")
        for method, transaction in resource.methods.items():
            out.append(f"<method name={quoteattr(method)} id={quoteattr(transaction.name)}>")
            if transaction.accepts:
                out.append("<request>" + "".join(
                    f"<representation mediaType={quoteattr(media)}/>"
                    for media in transaction.accepts) + "</request>")
            out.append("<response>" + "".join(
                f"<representation mediaType={quoteattr(media)}/>"
                for media in _representations(transaction)) + "</response></method>")
        out.append("</resource>")
    out.append("</resources></application>")
    return "".join(out).encode("utf-8")
