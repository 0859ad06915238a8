"""Content-Type parsing and Accept negotiation (RFC 9110 12.5.1, PS3.18 8.7).

Negotiation is a table: each resource offers (multipart?, media type) pairs; each Accept range
in preference order is resolved against the offers to a Representation, which the resource then
checks against what is stored (the transfer syntax it can produce).
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from pacs.dicom.transfer_syntaxes import DEFAULT_TRANSFER_SYNTAX
from pacs.http.errors import NotAcceptable

MULTIPART_RELATED = "multipart/related"
ANY = "*/*"
AS_STORED = "*"


@dataclass(frozen=True)
class MediaType:
    """A media type with lower-cased name and parameter names, unquoted values."""

    name: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0


def parse_media_type(value: str) -> MediaType:
    """Parse one media type with parameters; raise ValueError if it is not `type/subtype`."""
    pieces = _split_outside_quotes(value, ";")
    name = pieces[0].strip().lower()
    if name.count("/") != 1 or not all(name.split("/")):
        raise ValueError(f"not a media type: {value!r}")
    params: dict[str, str] = {}
    q = 1.0
    for piece in pieces[1:]:
        key, sep, raw = piece.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            continue
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1].replace('\\"', '"')
        if key == "q":
            try:
                q = float(raw)
            except ValueError:
                q = 0.0
        else:
            params[key] = raw
    return MediaType(name, params, q)


@lru_cache(maxsize=256)  # clients repeat a few Accept values on every request
def parse_accept(value: str | None) -> tuple[MediaType, ...]:
    """Accept ranges in preference order (stable for equal q); no header means `*/*`."""
    if value is None or not value.strip():
        return (MediaType(ANY),)
    ranges = []
    for piece in _split_outside_quotes(value, ","):
        if piece.strip():
            try:
                ranges.append(parse_media_type(piece))
            except ValueError:
                continue
    return tuple(sorted((r for r in ranges if r.q > 0), key=lambda r: -r.q))


def _split_outside_quotes(value: str, sep: str) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:  # the character after a backslash in a quoted string (RFC 9110 5.6.4)
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        if char == sep and not quoted:
            out.append("".join(current))
            current = []
        else:
            current.append(char)
    out.append("".join(current))
    return out


def matches(pattern: str, name: str) -> bool:
    """`pattern` (possibly `*/*` or `type/*`) covers the media type `name`."""
    if pattern == ANY:
        return True
    if pattern.endswith("/*"):
        return name.split("/")[0] == pattern[:-2]
    return pattern == name


@dataclass(frozen=True)
class Offer:
    """A representation a resource serves: single-part or multipart/related of `media_type`."""

    multipart: bool
    media_type: str

    def describe(self, transfer_syntax: str | None = None) -> str:
        ts = f"; transfer-syntax={transfer_syntax}" if transfer_syntax else ""
        if self.multipart:
            return f'{MULTIPART_RELATED}; type="{self.media_type}"{ts}'
        return f"{self.media_type}{ts}"


@dataclass(frozen=True)
class Representation:
    """The chosen response form; `transfer_syntax` is `*` to mean as stored."""

    offer: Offer
    media_type: str  # the (part) media type; a wildcard range resolves to the offer's
    transfer_syntax: str


def _always(_: "Representation") -> str | None:
    return None


def negotiate(accept: str | None, offers: Sequence[Offer], available: Sequence[str],
              refusal: Callable[[Representation], str | None] = _always) -> Representation:
    """The first Accept range, by preference, that an offer satisfies and `refusal` does not
    refuse; else 406 naming the reasons (PS3.18 8.7.1).

    `available` lists, for the error message, the media types the server can produce here.
    """
    ranges = parse_accept(accept)
    reasons: list[str] = []
    for media_range, candidate in _candidates(ranges, offers):
        reason = refusal(candidate)
        if reason is None:
            return candidate
        reasons.append(f"{_show(media_range)}: {reason}")
    asked = ", ".join(_show(r) for r in ranges) or "(nothing)"
    why = f" ({'; '.join(dict.fromkeys(reasons))})" if reasons else ""
    raise NotAcceptable(f"none of the acceptable media types [{asked}] can be produced for "
                        f"this resource{why}; available: {'; '.join(available)}")


def preferred(accept: str | None, offers: Sequence[Offer]) -> Representation | None:
    """The representation `negotiate` tries first (what the client likes best)."""
    return next((c for _, c in _candidates(parse_accept(accept), offers)), None)


def _candidates(ranges: Sequence[MediaType], offers: Sequence[Offer]
                ) -> Iterator[tuple[MediaType, Representation]]:
    """Each Accept range resolved against each offer, in the order negotiation tries them."""
    for media_range in ranges:
        for offer in offers:
            candidate = _resolve(media_range, offer)
            if candidate is not None:
                yield media_range, candidate


def _resolve(media_range: MediaType, offer: Offer) -> Representation | None:
    name, params = media_range.name, media_range.params
    if name == ANY or (offer.multipart and name == "multipart/*"):
        return Representation(offer, offer.media_type, AS_STORED)
    if offer.multipart:
        if name != MULTIPART_RELATED:
            return None
        part = params.get("type", offer.media_type).lower()
    else:
        part = name
    if not matches(part, offer.media_type):
        return None
    wildcard = part.endswith("*")
    default = AS_STORED if wildcard else DEFAULT_TRANSFER_SYNTAX.get(offer.media_type, AS_STORED)
    return Representation(offer, offer.media_type, params.get("transfer-syntax", default))


def _show(media_range: MediaType) -> str:
    params = "".join(f"; {k}={v}" for k, v in media_range.params.items())
    return f"{media_range.name}{params}"
