"""Property-based tests of the sans-IO multipart/related reader (RFC 2046 5.1): any body built
from random parts parses back to those parts whatever the chunking (1 byte, 16 bytes, random
cuts, whole), and no body at all, however malformed, makes it raise anything but
MultipartError."""

from dataclasses import dataclass

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pacs.http.multipart_reader import (
    MultipartError,
    MultipartReader,
    PartData,
    PartEnd,
    PartStart,
)
from tests.fuzz.nasty import words

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
BCHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'()+_,-./:=? "
TOKEN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"

Parsed = list[tuple[dict[str, str], bytes]]


@dataclass(frozen=True)
class Outcome:
    """What a whole parse came to: the parts, and the error if one was raised."""

    parts: tuple[tuple[tuple[tuple[str, str], ...], bytes], ...]
    error: bool


def boundaries() -> st.SearchStrategy[str]:
    """RFC 2046 5.1.1 boundaries: 1 to 70 bchars, not ending in a space."""
    return words(BCHARS, max_size=69).flatmap(
        lambda head: st.sampled_from(BCHARS.strip()).map(lambda last: head + last))


def header_values() -> st.SearchStrategy[str]:
    """Values that survive as they are: latin-1 without CR/LF, no surrounding whitespace."""
    return st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF,
                                 exclude_characters="\x7f"), max_size=40) \
        .map(str.strip)


def parts_strategy(boundary: str) -> st.SearchStrategy[list[tuple[dict[str, str], bytes]]]:
    """Parts whose payloads are random bytes mixed with the framing's own pieces (CRLF,
    dashes, the boundary itself without its leading CRLF--), which must pass through."""
    pieces = st.sampled_from([b"\r\n", b"--", b"-", b"\r", b"\n", boundary.encode(),
                              b"--" + boundary.encode(), b"\r\n-" + boundary.encode(),
                              b"\r\n--" + boundary.encode()[:-1], b"\0", b"\xff"])
    payload = st.lists(st.one_of(st.binary(max_size=40), pieces), max_size=12) \
        .map(b"".join).filter(lambda data: b"\r\n--" + boundary.encode() not in data
                              and not data.endswith(b"\r\n--" + boundary.encode()[:-1]))
    headers = st.dictionaries(words(TOKEN, 1, 20).map(str.lower),
                              header_values(), max_size=4)
    return st.lists(st.tuples(headers, payload), max_size=5)


def encode(parts: list[tuple[dict[str, str], bytes]], boundary: str, preamble: bytes = b"",
           epilogue: bytes = b"") -> bytes:
    body = bytearray(preamble + (b"\r\n" if preamble else b""))
    for headers, data in parts:
        body += b"--" + boundary.encode() + b"\r\n"
        for name, value in headers.items():
            body += f"{name}: {value}\r\n".encode("latin-1")
        body += b"\r\n" + data + b"\r\n"
    return bytes(body + b"--" + boundary.encode() + b"--" + epilogue)


def chunked(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(body)) for c in cuts} | {0, len(body)})
    return [body[a:b] for a, b in zip(points, points[1:], strict=False)]


def fixed(body: bytes, size: int) -> list[bytes]:
    return [body[i:i + size] for i in range(0, len(body), size)] or [b""]


def parse(chunks: list[bytes], boundary: str) -> Parsed:
    """Feed `chunks`, check the order of events, close; MultipartError propagates."""
    reader = MultipartReader(boundary)
    parts: Parsed = []
    inside = False
    for chunk in chunks:
        for event in reader.feed(chunk):
            if isinstance(event, PartStart):
                assert not inside
                inside = True
                parts.append((dict(event.headers), b""))
            elif isinstance(event, PartData):
                assert inside
                parts[-1] = (parts[-1][0], parts[-1][1] + event.data)
            else:
                assert isinstance(event, PartEnd) and inside
                inside = False
    reader.close()
    assert not inside
    return parts


def outcome(chunks: list[bytes], boundary: str) -> Outcome:
    """The parse's result: completed parts before any error, and whether one was raised.
    Anything but MultipartError propagates (and fails the test)."""
    reader = MultipartReader(boundary)
    done: list[tuple[tuple[tuple[str, str], ...], bytes]] = []
    current: tuple[tuple[tuple[str, str], ...], bytearray] | None = None
    try:
        for chunk in chunks:
            for event in reader.feed(chunk):
                if isinstance(event, PartStart):
                    current = (tuple(sorted(event.headers.items())), bytearray())
                elif isinstance(event, PartData):
                    assert current is not None
                    current[1].extend(event.data)
                else:
                    assert current is not None
                    done.append((current[0], bytes(current[1])))
                    current = None
        reader.close()
    except MultipartError:
        return Outcome(tuple(done), True)
    return Outcome(tuple(done), False)


@SETTINGS
@given(data=st.data(), boundary=boundaries())
def test_random_parts_round_trip_whatever_the_chunking(data: st.DataObject,
                                                       boundary: str) -> None:
    parts = data.draw(parts_strategy(boundary))
    preamble = data.draw(st.sampled_from([b"", b"preamble", b"\r\n", b"--x\r\n"]).filter(
        lambda text: b"--" + boundary.encode() not in text))
    epilogue = data.draw(st.sampled_from([b"", b"\r\n", b"\r\nepilogue\r\n--" +
                                          boundary.encode() + b"\r\n"]))
    body = encode(parts, boundary, preamble, epilogue)
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=20))
    expected = [({k.lower(): v for k, v in headers.items()}, payload)
                for headers, payload in parts]
    for chunks in (fixed(body, 1), fixed(body, 16), chunked(body, cuts), [body]):
        assert parse(chunks, boundary) == expected


def mutate(body: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Apply (kind, position, bytes) edits: 0 flips a bit, 1 cuts, 2 inserts, 3 deletes."""
    out = bytearray(body)
    for kind, position, extra in edits:
        at = position % (len(out) + 1)
        if kind == 0 and out:
            out[at % len(out)] ^= 1 << (position % 8)
        elif kind == 1:
            del out[at:]
        elif kind == 2:
            out[at:at] = extra
        else:
            del out[at:at + len(extra) + 1]
    return bytes(out)


def edits_strategy() -> st.SearchStrategy[list[tuple[int, int, bytes]]]:
    framing = st.sampled_from([b"\r\n", b"--", b"\r\n\r\n", b":", b" ", b"\t", b"\0", b"\r",
                               b"\n", b"Content-Type", b"\xff\xfe"])
    return st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1 << 16),
                              st.one_of(framing, st.binary(max_size=8))), min_size=1,
                    max_size=4)


@SETTINGS
@given(data=st.data(), boundary=boundaries(), edits=edits_strategy())
def test_mutated_bodies_fail_only_with_multipart_error_and_chunking_changes_nothing(
        data: st.DataObject, boundary: str, edits: list[tuple[int, int, bytes]]) -> None:
    body = mutate(encode(data.draw(parts_strategy(boundary)), boundary), edits)
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=20))
    whole = outcome([body], boundary)
    for chunks in (fixed(body, 1), fixed(body, 16), chunked(body, cuts)):
        assert outcome(chunks, boundary) == whole


@SETTINGS
@given(body=st.binary(max_size=600), boundary=boundaries())
@example(body=b"--a\r\n\r\n\r\n--a", boundary="a")
@example(body=b"--a--", boundary="a")
@example(body=b"\r\n--a \t \r\nX:\r\n\r\n\r\n--a--", boundary="a")
def test_arbitrary_bytes_fail_only_with_multipart_error(body: bytes, boundary: str) -> None:
    for chunks in (fixed(body, 1), fixed(body, 16), [body]):
        outcome(chunks, boundary)


@SETTINGS
@given(boundary=st.text(max_size=90))
def test_any_boundary_is_accepted_or_refused_with_multipart_error(boundary: str) -> None:
    try:
        MultipartReader(boundary)
    except MultipartError:
        return
    body = encode([({"content-type": "application/dicom"}, b"DICM")], boundary)
    assert parse(fixed(body, 16), boundary) == [({"content-type": "application/dicom"},
                                                 b"DICM")]


@settings(max_examples=60, deadline=None)
@given(data=st.data(), limit=st.integers(1, 200))
def test_header_limit_refuses_with_multipart_error_whatever_the_chunking(
        data: st.DataObject, limit: int) -> None:
    headers = data.draw(st.dictionaries(words(TOKEN, 1, 30).map(str.lower),
                                        header_values(), min_size=1, max_size=6))
    body = encode([(headers, b"x")], "b")
    size = sum(len(k) + len(v) + 4 for k, v in headers.items())
    for chunks in (fixed(body, 1), fixed(body, 16), [body]):
        reader = MultipartReader("b", max_header_bytes=limit)
        try:
            for chunk in chunks:
                reader.feed(chunk)
            reader.close()
        except MultipartError:
            assert size > limit
        else:
            assert size <= limit
