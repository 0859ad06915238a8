"""Property-based tests of the request parsers: Content-Type and Accept (RFC 9110 12.5.1),
QIDO query parameters (PS3.18 8.3.4), frame lists (PS3.18 8.3.3) and rendered parameters
(PS3.18 8.3.5). Each refuses malformed input only with its documented error, and what it
accepts round-trips. The live tests send the same inputs to a real server: never a 5xx."""

import math
from collections.abc import Iterator
from io import BytesIO
from urllib.parse import quote

import pydicom
import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pacs.http.errors import NotAcceptable
from pacs.http.media_types import (
    MediaType,
    Offer,
    negotiate,
    parse_accept,
    parse_media_type,
    preferred,
)
from pacs.pixels.render import (
    MAX_VIEWPORT_SIDE,
    WINDOW_FUNCTIONS,
    RenderParams,
    Viewport,
    Window,
    parse_render_params,
)
from pacs.service.errors import InvalidArgument
from pacs.service.profiles import FULL, GOOGLE, Profile
from pacs.service.search_terms import attribute_tag, parse_search
from pacs.transactions.retrieve_frames import OFFERS as FRAME_OFFERS
from pacs.transactions.retrieve_frames import parse_frame_list
from storage.query import Level
from tests.conftest import LiveServer
from tests.dataset_factories import corpus_bytes, ct_series, instance_path
from tests.fuzz.nasty import NASTY, QIDO_KEYS, words
from tests.fuzz.server_errors import assert_no_server_error

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

UNIT = settings(max_examples=200, deadline=None)
LIVE = settings(max_examples=80, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
TOKEN = "abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~"
SEARCH_OFFERS = (Offer(False, "application/dicom+json"), Offer(False, "application/json"),
                 Offer(True, "application/dicom+xml"))


def nasty_text() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(NASTY), st.text(max_size=30),
                     st.lists(st.sampled_from(NASTY), max_size=5).map("".join))


# -- Content-Type and Accept --------------------------------------------------------------


def media_types(escapes: bool = True) -> st.SearchStrategy[MediaType]:
    """Media types with parameters whose values are tokens or quoted strings (RFC 9110 5.6),
    with quoted-pairs (an escaped quote) when `escapes`."""
    token = words(TOKEN, 1, 12)
    quoted = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E,
                                   exclude_characters='"\\'), max_size=20)
    value = st.one_of(token, quoted, *([quoted.map(lambda v: v.replace(" ", '\\"'))]
                                       if escapes else []))
    params = st.dictionaries(token.filter(lambda k: k != "q"), value, max_size=4)
    q = st.sampled_from([1.0, 0.5, 0.001, 0.0, 0.9])
    return st.builds(MediaType, st.builds(lambda a, b: f"{a}/{b}", token, token), params, q)


def written(media: MediaType) -> str:
    params = "".join(f'; {k}="{v}"' if any(c not in TOKEN for c in v) or not v
                     else f"; {k}={v}" for k, v in media.params.items())
    q = f"; q={media.q}" if media.q != 1.0 else ""
    return media.name + params + q


@UNIT
@given(media=media_types())
@example(media=MediaType("a/b", {"x": '\\"', "y": "1"}))  # a quoted-pair, then a parameter
def test_media_types_round_trip(media: MediaType) -> None:
    assert parse_media_type(written(media)) == MediaType(
        media.name, {k: v.replace('\\"', '"') for k, v in media.params.items()}, media.q)


@UNIT
@given(value=nasty_text())
@example(value="a/b; q=nan")
@example(value='multipart/related; type="application/dicom; boundary=x')
def test_any_content_type_parses_or_is_a_value_error(value: str) -> None:
    try:
        media = parse_media_type(value)
    except ValueError:
        return
    assert media.name.count("/") == 1 and media.name == media.name.lower()


@UNIT
@given(ranges=st.lists(media_types(escapes=False), max_size=6),
       junk=st.lists(nasty_text(), max_size=3))
def test_accept_ranges_come_out_by_preference(ranges: list[MediaType], junk: list[str]) -> None:
    value = ", ".join([*(written(r) for r in ranges), *junk])
    parsed = parse_accept(value)
    assert all(r.q > 0 for r in parsed)
    assert [r.q for r in parsed] == sorted((r.q for r in parsed), reverse=True)
    if not value.strip():
        assert [r.name for r in parsed] == ["*/*"]  # no Accept at all means anything
    elif not junk:
        assert [r.name for r in parsed] == [r.name for r in sorted(
            (r for r in ranges if r.q > 0), key=lambda r: -r.q)]


@UNIT
@given(accept=st.one_of(st.none(), nasty_text(),
                        st.lists(media_types(), max_size=4).map(
                            lambda rs: ", ".join(written(r) for r in rs))),
       offers=st.sampled_from([SEARCH_OFFERS, FRAME_OFFERS]))
def test_negotiation_answers_or_is_406(accept: str | None,
                                       offers: tuple[Offer, ...]) -> None:
    try:
        chosen = negotiate(accept, offers, ["x"])
    except NotAcceptable:
        return
    assert chosen.offer in offers
    assert preferred(accept, offers) is not None


# -- QIDO query parameters -----------------------------------------------------------------


def search_params() -> st.SearchStrategy[list[tuple[str, str]]]:
    return st.lists(st.tuples(st.one_of(st.sampled_from(QIDO_KEYS), st.text(max_size=12)),
                              nasty_text()), max_size=6)


@UNIT
@given(params=search_params(), level=st.sampled_from(Level),
       profile=st.sampled_from([FULL, GOOGLE]))
@example(params=[("StudyDate", "١٩٧٠٠١٠١")], level=Level.STUDY, profile=FULL)
@example(params=[("limit", "9" * 5000)], level=Level.STUDY, profile=FULL)
def test_any_query_parses_or_is_invalid_argument(params: list[tuple[str, str]], level: Level,
                                                 profile: Profile) -> None:
    try:
        asked = parse_search(params, level, profile)
    except InvalidArgument:
        return
    limits = profile.search_limits[level]
    assert 1 <= asked.query.limit <= limits.maximum
    assert 0 <= asked.query.offset <= profile.max_search_offset
    for match in asked.query.matches:
        assert all(isinstance(v, str) for v in match.values)


@UNIT
@given(limit=st.integers(1, 10**30), offset=st.integers(0, 10**30),
       level=st.sampled_from(Level), profile=st.sampled_from([FULL, GOOGLE]))
def test_limit_and_offset_round_trip(limit: int, offset: int, level: Level,
                                     profile: Profile) -> None:
    asked = parse_search([("limit", str(limit)), ("offset", str(offset))], level, profile)
    assert asked.query.limit == min(limit, profile.search_limits[level].maximum)
    assert asked.query.offset == min(offset, profile.max_search_offset)


@UNIT
@given(key=nasty_text())
def test_attribute_names_resolve_or_are_invalid_argument(key: str) -> None:
    try:
        tag = attribute_tag(key)
    except InvalidArgument:
        return
    assert 0 <= tag <= 0xFFFFFFFF


# -- frame lists ---------------------------------------------------------------------------


@UNIT
@given(numbers=st.lists(st.integers(1, 10**12), min_size=1, max_size=30),
       spaces=st.sampled_from(["", " ", "  "]))
def test_frame_lists_round_trip(numbers: list[int], spaces: str) -> None:
    text = ",".join(f"{spaces}{n}{spaces}" for n in numbers)
    assert parse_frame_list(text, 30) == numbers
    with pytest.raises(InvalidArgument):
        parse_frame_list(text, len(numbers) - 1)


@UNIT
@given(text=st.one_of(nasty_text(), st.lists(nasty_text(), max_size=5).map(",".join)))
@example(text="²")
@example(text="1,,2")
@example(text="0")
def test_any_frame_list_parses_or_is_invalid_argument(text: str) -> None:
    try:
        numbers = parse_frame_list(text, 10_000)
    except InvalidArgument:
        return
    assert numbers and all(n >= 1 for n in numbers)


# -- rendered parameters -------------------------------------------------------------------


def finite(low: float = -1e300, high: float = 1e300) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


def windows() -> st.SearchStrategy[Window]:
    return st.builds(Window, finite(), finite(1.0, 1e300),
                     st.sampled_from(WINDOW_FUNCTIONS))


def viewports() -> st.SearchStrategy[Viewport]:
    side = st.integers(1, MAX_VIEWPORT_SIDE)
    source = st.tuples(finite(0.0, 1e6), finite(0.0, 1e6),
                       finite(-1e6, 1e6).filter(lambda v: v != 0),
                       finite(-1e6, 1e6).filter(lambda v: v != 0))
    return st.builds(Viewport, side, side, st.one_of(st.none(), source))


@UNIT
@given(window=st.one_of(st.none(), windows()), viewport=st.one_of(st.none(), viewports()),
       quality=st.integers(1, 100),
       media_type=st.sampled_from(["image/jpeg", "image/png", "image/gif"]))
def test_rendered_parameters_round_trip(window: Window | None, viewport: Viewport | None,
                                        quality: int, media_type: str) -> None:
    query = {"quality": str(quality)}
    if window is not None:
        query["window"] = f"{window.center!r},{window.width!r},{window.function}"
    if viewport is not None:
        source = "" if viewport.source is None else \
            "," + ",".join(repr(v) for v in viewport.source)
        query["viewport"] = f"{viewport.width},{viewport.height}{source}"
    assert parse_render_params(query, media_type) == RenderParams(media_type, quality, window,
                                                                  viewport)


RENDER_KEYS = ["viewport", "window", "quality", "annotation", "iccprofile", "charset",
               "accept", "other"]


@UNIT
@given(query=st.dictionaries(st.sampled_from(RENDER_KEYS),
                             st.one_of(nasty_text(), st.lists(nasty_text(), min_size=2,
                                                              max_size=7).map(",".join))),
       media_type=st.sampled_from(["image/jpeg", "image/png", "image/gif", "image/jp2", ""]),
       thumbnail=st.booleans())
@example(query={"viewport": "10,10,0,0,-inf,1"}, media_type="image/png", thumbnail=False)
@example(query={"window": "1e308,1e308,sigmoid"}, media_type="image/png", thumbnail=False)
def test_any_rendered_parameters_parse_or_are_a_value_error(query: dict[str, str],
                                                            media_type: str,
                                                            thumbnail: bool) -> None:
    try:
        params = parse_render_params(query, media_type, thumbnail)
    except ValueError:
        return
    if params.window is not None:
        assert math.isfinite(params.window.center) and params.window.width > 0
    if params.viewport is not None:
        assert 1 <= params.viewport.width <= MAX_VIEWPORT_SIDE
        assert 1 <= params.viewport.height <= MAX_VIEWPORT_SIDE


# -- the same inputs against a live server -------------------------------------------------


class Baseline:
    """A live server holding a multi-frame, a single-frame and a colour instance."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.http = requests.Session()
        self.files = [corpus_bytes("rtdose.dcm"), corpus_bytes("SC_rgb_rle_2frame.dcm"),
                      ct_series(1, size=16)[0]]
        for data in self.files:
            stored = self.http.post(f"{server.dicomweb}/studies", data=data,
                                    headers={"Content-Type": "application/dicom",
                                             "Accept": "application/dicom+json"})
            assert stored.status_code == 200, stored.text

    def instances(self) -> Iterator[str]:
        for data in self.files:
            yield self.server.dicomweb + instance_path(pydicom.dcmread(BytesIO(data)))

    def get(self, url: str, accept: str | None = None) -> requests.Response:
        return self.http.get(url, headers=header(accept), timeout=60)


@pytest.fixture(scope="module")
def baseline(shared_server: LiveServer) -> Baseline:
    return Baseline(shared_server)


def query_string(params: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)


def header(value: str | None) -> dict[str, str]:
    """An Accept header carrying `value` as far as HTTP allows: latin-1, no CR, LF or NUL,
    no surrounding whitespace (requests refuses the rest before sending)."""
    if value is None:
        return {}
    text = "".join(c for c in value if c not in "\r\n\0").strip()
    return {"Accept": text.encode("latin-1", "replace").decode("latin-1")}


@LIVE
@given(params=search_params(), level=st.sampled_from(["studies", "series", "instances"]),
       google=st.booleans())
def test_live_search_never_answers_5xx(baseline: Baseline, params: list[tuple[str, str]],
                                       level: str, google: bool) -> None:
    root = baseline.server.google() if google else baseline.server.dicomweb
    url = f"{root}/{level}?{query_string(params)}"
    assert_no_server_error(baseline.get(url), f"GET {url}")


@LIVE
@given(frames=st.one_of(nasty_text(), st.lists(st.integers(0, 20).map(str), min_size=1,
                                                max_size=5).map(",".join)),
       accept=st.one_of(st.none(), nasty_text(), st.sampled_from([
           "multipart/related; type=application/octet-stream",
           'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.50',
           "multipart/related; type=image/jls", "multipart/related; type=image/jp2",
           "multipart/related; type=image/png", "multipart/related; type=image/dicom-rle",
           "multipart/related; type=application/octet-stream; transfer-syntax=*",
           "multipart/related; type=image/jxl", "multipart/related; type=image/jphc"])),
       which=st.integers(0, 2))
def test_live_frames_never_answer_5xx(baseline: Baseline, frames: str, accept: str | None,
                                      which: int) -> None:
    url = f"{list(baseline.instances())[which]}/frames/{quote(frames, safe=',')}"
    if not frames:
        return
    assert_no_server_error(baseline.get(url, accept), f"GET {url} Accept={accept!r}")


@LIVE
@given(query=st.dictionaries(st.sampled_from(RENDER_KEYS),
                             st.one_of(nasty_text(), st.lists(
                                 st.sampled_from(["1", "0", "-5", "64", "1e9", "", "nan",
                                                  "0.5", "sigmoid", "linear-exact"]),
                                 min_size=2, max_size=6).map(",".join))),
       resource=st.sampled_from(["/rendered", "/thumbnail", "/frames/1/rendered",
                                 "/frames/2/rendered", "/frames/1,2/rendered"]),
       accept=st.one_of(st.none(), st.sampled_from(["image/png", "image/gif", "image/*",
                                                    "multipart/related; type=image/png",
                                                    "image/jp2", "text/html"])),
       which=st.integers(0, 2))
def test_live_rendered_never_answers_5xx(baseline: Baseline, query: dict[str, str],
                                         resource: str, accept: str | None,
                                         which: int) -> None:
    url = f"{list(baseline.instances())[which]}{resource}?{query_string(list(query.items()))}"
    assert_no_server_error(baseline.get(url, accept), f"GET {url} Accept={accept!r}")
