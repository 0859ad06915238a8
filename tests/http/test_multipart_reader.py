"""MultipartReader: framing, limits and malformed bodies, fed in 1, 16 and all bytes at a time."""

import random
from collections.abc import AsyncIterator, Iterator
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from dicomweb_client import DICOMwebClient
from pydicom.data import get_testdata_file

from pacs.http.multipart_reader import (
    MultipartError,
    MultipartReader,
    PartData,
    PartEnd,
    PartStart,
)
from pacs.http.multipart_writer import Part, multipart_stream, new_boundary

BOUNDARY = "a1b2c3d4"
DICOM_FILES = ["CT_small.dcm", "MR_small_RLE.dcm", "rtdose.dcm"]

ParsedPart = tuple[dict[str, str], bytes]


@pytest.fixture(params=[1, 16, None], ids=["1-byte", "16-byte", "whole"])
def chunk_size(request: pytest.FixtureRequest) -> int | None:
    size: int | None = request.param
    return size


def chunks(body: bytes, size: int | None) -> Iterator[bytes]:
    step = size or max(len(body), 1)
    for start in range(0, len(body), step):
        yield body[start : start + step]


def parse(
    body: bytes, size: int | None, boundary: str = BOUNDARY, **limits: int
) -> list[ParsedPart]:
    """Feed body to a reader, check the event order, close it, and return (headers, data) pairs."""
    reader = MultipartReader(boundary, **limits)
    parts: list[ParsedPart] = []
    in_part = False
    for chunk in chunks(body, size):
        for event in reader.feed(chunk):
            match event:
                case PartStart(headers=headers):
                    assert not in_part
                    in_part = True
                    parts.append((dict(headers), b""))
                case PartData(data=data):
                    assert in_part and data
                    parts[-1] = (parts[-1][0], parts[-1][1] + data)
                case PartEnd():
                    assert in_part
                    in_part = False
    reader.close()
    assert not in_part
    assert reader.parts_seen == len(parts)
    return parts


def encode(parts: list[tuple[str, bytes]], boundary: str = BOUNDARY) -> bytes:
    """A body with one Content-Type header per part, the way most clients frame it."""
    body = b"".join(
        b"--%s\r\nContent-Type: %s\r\n\r\n%s\r\n" % (boundary.encode(), ctype.encode(), data)
        for ctype, data in parts
    )
    return body + b"--%s--\r\n" % boundary.encode()


def test_two_parts(chunk_size: int | None) -> None:
    body = encode([("application/dicom", b"first"), ("text/plain", b"second\r\n")])
    assert parse(body, chunk_size) == [
        ({"content-type": "application/dicom"}, b"first"),
        ({"content-type": "text/plain"}, b"second\r\n"),
    ]


def test_header_names_lowered_values_stripped_repeats_combined(chunk_size: int | None) -> None:
    body = (
        b"--a1b2c3d4\r\nCONTENT-Type:   application/dicom  \r\nX-Tag: one\r\nx-tag:two\r\n\r\n"
        b"data\r\n--a1b2c3d4--"
    )
    assert parse(body, chunk_size) == [
        ({"content-type": "application/dicom", "x-tag": "one, two"}, b"data")
    ]


def test_part_without_headers_and_empty_part(chunk_size: int | None) -> None:
    body = b"--a1b2c3d4\r\n\r\nbare\r\n--a1b2c3d4\r\nContent-Type: x\r\n\r\n\r\n--a1b2c3d4--"
    assert parse(body, chunk_size) == [({}, b"bare"), ({"content-type": "x"}, b"")]


def test_close_delimiter_only_means_no_parts(chunk_size: int | None) -> None:
    assert parse(b"--a1b2c3d4--\r\n", chunk_size) == []


@pytest.mark.parametrize(
    "preamble",
    [
        b"",
        b"\r\n",
        b"This is the preamble.\r\n",
        b"--a1b2c3d4\rX\r\n--a1b2c3d4-x\r\n--a1b2c3d\r\n--a1b2c3d4x\r\n\r\n-- a1b2c3d4\r\n",
    ],
    ids=["none", "crlf", "text", "near-misses"],
)
def test_preamble_and_epilogue_ignored(preamble: bytes, chunk_size: int | None) -> None:
    epilogue = b"\r\n--a1b2c3d4\r\nContent-Type: not-a-part\r\n\r\nepilogue\r\n--a1b2c3d4--\r\n"
    body = preamble + encode([("a/b", b"payload")]) + epilogue
    assert parse(body, chunk_size) == [({"content-type": "a/b"}, b"payload")]


def test_transport_padding_after_delimiters(chunk_size: int | None) -> None:
    body = b"--a1b2c3d4 \t\r\n\r\none\r\n--a1b2c3d4  \r\n\r\ntwo\r\n--a1b2c3d4--  \r\n"
    assert parse(body, chunk_size) == [({}, b"one"), ({}, b"two")]


DELIMITER = b"\r\n--" + BOUNDARY.encode()
TRICKY_PAYLOADS = [
    b"\r\n",
    b"line one\r\nline two\r\n",
    b"--",
    b"\r\n--",
    b"\r\n\r\n--\r\n",
    b"--" + BOUNDARY.encode() + b"--",
    b"x--" + BOUNDARY.encode() + b"\r\n",
    b"x" + BOUNDARY.encode(),
    *(b"x" + DELIMITER[:n] for n in range(1, len(DELIMITER))),
    *(DELIMITER[:n] + b"x" for n in range(1, len(DELIMITER))),
    DELIMITER[:-1] + b"\r\n",
    bytes(range(256)) * 3,
]


@pytest.mark.parametrize("payload", TRICKY_PAYLOADS)
def test_payload_passed_through_exactly(payload: bytes, chunk_size: int | None) -> None:
    body = encode([("a/b", payload), ("c/d", payload)])
    assert parse(body, chunk_size) == [
        ({"content-type": "a/b"}, payload),
        ({"content-type": "c/d"}, payload),
    ]


def test_data_is_emitted_as_it_arrives() -> None:
    chunk = 64 * 1024
    payload = random.Random(7).randbytes(16 * chunk)
    body = encode([("application/dicom", payload)])
    start = body.index(payload)
    reader = MultipartReader(BOUNDARY)
    fed = received = 0
    for piece in chunks(body, chunk):
        sizes = [len(e.data) for e in reader.feed(piece) if isinstance(e, PartData)]
        assert all(size <= chunk + len(DELIMITER) for size in sizes)
        fed += len(piece)
        received += sum(sizes)
        # All payload fed so far is handed over, except a possible delimiter prefix.
        available = min(max(fed - start, 0), len(payload))
        assert available - len(DELIMITER) < received <= available or available == 0
    reader.close()
    assert received == len(payload)


async def _body_chunks(data: bytes, rng: random.Random) -> AsyncIterator[bytes]:
    position = 0
    while position < len(data):
        step = rng.choice([0, 1, 7, 100, 4096])
        yield data[position : position + step]
        position += step


def _random_payload(rng: random.Random, boundary: str) -> bytes:
    """Random bytes mixed with delimiter look-alikes; a "." keeps pieces from joining."""
    hazards = [b"\r\n--", b"--", b"\r\n", boundary.encode(), b"--" + boundary.encode() + b"--"]
    pieces = []
    for _ in range(rng.randrange(6)):
        pieces += [rng.randbytes(rng.randrange(3000)), b".", rng.choice(hazards), b"."]
    payload = b"".join(pieces)
    assert b"\r\n--" + boundary.encode() not in payload
    return payload


@pytest.mark.parametrize("seed", range(5))
async def test_round_trip_from_writer(seed: int, chunk_size: int | None) -> None:
    rng = random.Random(seed)
    boundary = new_boundary()
    payloads = [_random_payload(rng, boundary) for _ in range(rng.randrange(1, 6))]

    async def parts() -> AsyncIterator[Part]:
        for index, payload in enumerate(payloads):
            headers = {"Content-Type": "application/octet-stream", "Content-ID": f"<{index}>"}
            yield Part(headers, _body_chunks(payload, rng))

    body = b"".join([chunk async for chunk in multipart_stream(parts(), boundary)])
    assert parse(body, chunk_size, boundary) == [
        ({"content-type": "application/octet-stream", "content-id": f"<{index}>"}, payload)
        for index, payload in enumerate(payloads)
    ]


def _dicom_path(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    assert isinstance(path, str)
    return Path(path)


def _dicom_bytes(name: str) -> bytes:
    return _dicom_path(name).read_bytes()


async def test_round_trip_real_dicom(chunk_size: int | None) -> None:
    boundary = new_boundary()
    files = [_dicom_bytes(name) for name in DICOM_FILES]

    async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
        yield data

    async def parts() -> AsyncIterator[Part]:
        for data in files:
            yield Part({"Content-Type": "application/dicom"}, one_chunk(data))

    body = b"".join([chunk async for chunk in multipart_stream(parts(), boundary)])
    parsed = parse(body, chunk_size, boundary)
    assert [data for _, data in parsed] == files
    for (_, data), name in zip(parsed, DICOM_FILES, strict=True):
        expected = pydicom.dcmread(_dicom_path(name))
        assert pydicom.dcmread(BytesIO(data)).SOPInstanceUID == expected.SOPInstanceUID


def test_body_sent_by_dicomweb_client(chunk_size: int | None) -> None:
    """DICOMwebClient.store_instances frames with a leading CRLF and no final CRLF."""
    content_type = (
        'multipart/related; type="application/dicom"; '
        'boundary="0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1"'
    )
    files = [_dicom_bytes(name) for name in DICOM_FILES]
    body = DICOMwebClient._encode_multipart_message(files, content_type)
    assert body.startswith(b"\r\n--") and body.endswith(b"--")
    parsed = parse(body, chunk_size, "0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1")
    assert parsed == [({"content-type": "application/dicom"}, data) for data in files]


@pytest.mark.parametrize(
    "boundary", ["", "x" * 71, "ends-with-space ", "semi;colon", "naïve"], ids=repr
)
def test_invalid_boundary_rejected(boundary: str) -> None:
    with pytest.raises(MultipartError, match="boundary"):
        MultipartReader(boundary)


def test_longest_rfc_boundary_accepted(chunk_size: int | None) -> None:
    boundary = "'()+_,-./:=? " * 5 + "z" * 5
    assert len(boundary) == 70
    assert parse(encode([("a/b", b"x")], boundary), chunk_size, boundary) == [
        ({"content-type": "a/b"}, b"x")
    ]


def test_every_truncation_is_an_error(chunk_size: int | None) -> None:
    body = encode([("a/b", b"first\r\n--"), ("c/d", b"")])
    complete = body.index(b"--a1b2c3d4--") + len(b"--a1b2c3d4--")
    for end in range(complete):
        with pytest.raises(MultipartError):
            parse(body[:end], chunk_size)
    assert len(parse(body[:complete], chunk_size)) == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "no multipart boundary"),
        (b"plain text, no multipart framing at all", "no multipart boundary"),
        (b"--otherboundary\r\n\r\ndata\r\n--otherboundary--\r\n", "no multipart boundary"),
        (b"--a1b2c3d4X\r\n\r\ndata\r\n--a1b2c3d4X--\r\n", "no multipart boundary"),
        (b"--a1b2c3d4\r\nContent-Type: a/b\r\n\r\ndata", "closing boundary"),
        (b"--a1b2c3d4\r\nContent-Type: a/b\r\n\r\ndata\r\n--a1b2c3d4\r\n", "closing boundary"),
    ],
    ids=["empty", "garbage", "other-boundary", "longer-boundary", "no-close", "open-close"],
)
def test_missing_boundaries_fail_at_close(
    body: bytes, message: str, chunk_size: int | None
) -> None:
    reader = MultipartReader(BOUNDARY)
    for chunk in chunks(body, chunk_size):
        reader.feed(chunk)
    with pytest.raises(MultipartError, match=message):
        reader.close()


def test_long_garbage_fails_at_feed() -> None:
    reader = MultipartReader(BOUNDARY, max_preamble_bytes=1000)
    reader.feed(b"x" * 1000)
    with pytest.raises(MultipartError, match="no multipart boundary in the first 1000 bytes"):
        reader.feed(b"x")


def test_endless_transport_padding_fails_at_feed() -> None:
    reader = MultipartReader(BOUNDARY, max_preamble_bytes=1000)
    reader.feed(b"--a1b2c3d4")
    with pytest.raises(MultipartError, match="no multipart boundary"):
        for _ in range(1000):
            reader.feed(b" ")


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Type\r\n",
        b"Content Type: a/b\r\n",
        b": a/b\r\n",
        b"Content-Type: a/b\rX\r\n",
        b"Content-Type: a/b\r\n\rX",
    ],
    ids=["no-colon", "space-in-name", "empty-name", "cr-without-lf", "blank-line-without-lf"],
)
def test_malformed_part_headers(headers: bytes, chunk_size: int | None) -> None:
    body = b"--a1b2c3d4\r\n" + headers + b"\r\ndata\r\n--a1b2c3d4--\r\n"
    with pytest.raises(MultipartError):
        parse(body, chunk_size)


def _headers_of_size(total: int) -> bytes:
    """Header lines of exactly `total` bytes, counting each line's ': ' and CRLF."""
    lines = []
    while total > 0:
        value_length = min(total - len("X-Fill: \r\n"), 50)
        lines.append(b"X-Fill: " + b"v" * max(value_length, 1) + b"\r\n")
        total -= len(lines[-1])
    assert total == 0
    return b"".join(lines)


@pytest.mark.parametrize(("size", "ok"), [(1000, True), (1001, False)])
def test_total_header_size_limit(size: int, ok: bool, chunk_size: int | None) -> None:
    body = b"--a1b2c3d4\r\n" + _headers_of_size(size) + b"\r\ndata\r\n--a1b2c3d4--\r\n"
    if ok:
        assert parse(body, chunk_size, max_header_bytes=1000)[0][1] == b"data"
    else:
        with pytest.raises(MultipartError, match="headers exceed 1000 bytes"):
            parse(body, chunk_size, max_header_bytes=1000)


def test_single_huge_header_rejected_by_default_limit(chunk_size: int | None) -> None:
    body = b"--a1b2c3d4\r\nContent-Type: " + b"a" * (16 * 1024) + b"\r\n\r\nx\r\n--a1b2c3d4--"
    with pytest.raises(MultipartError):
        parse(body, chunk_size)


def test_many_headers_allowed_within_limit(chunk_size: int | None) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % n for n in range(40))
    body = b"--a1b2c3d4\r\n" + headers + b"\r\nx\r\n--a1b2c3d4--"
    assert len(parse(body, chunk_size)[0][0]) == 40


def _outcome(body: bytes, size: int | None) -> list[ParsedPart] | str:
    try:
        return parse(body, size, "B")
    except MultipartError:
        return "error"


def test_chunking_never_changes_the_outcome() -> None:
    rng = random.Random(3)
    alphabet = [
        b"\r",
        b"\n",
        b"-",
        b"--",
        b"B",
        b"\r\n--B",
        b"\r\n--B\r\n",
        b":",
        b" ",
        b"a",
        b"X-H",
    ]
    outcomes = set()
    for _ in range(3000):
        middle = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(30)))
        body = rng.choice([b"", b"--B\r\n"]) + middle + rng.choice([b"", b"\r\n--B--"])
        whole = _outcome(body, None)
        assert _outcome(body, 1) == whole and _outcome(body, 3) == whole, body
        outcomes.add("error" if whole == "error" else len(whole))
    assert {"error", 0, 1, 2} <= outcomes
