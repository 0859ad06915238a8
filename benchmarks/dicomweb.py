"""DICOMweb requests (PS3.18 Store, Search, Retrieve) that time and verify every response.

aiohttp rather than httpx: the client shares 2 cores with the server, so its CPU per request
must stay small. With 50 small GETs in flight, httpx 0.28 took ~1.3 ms of client CPU per
request and aiohttp 3.14 ~0.12 ms (10x), which would otherwise cap and skew every rate.
For the same reason, decoding a transcoded frame or a rendered image (1.5-3 ms each) waits
until the timed pool is done: see `DicomWebClient.check_deferred`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from io import BytesIO
from typing import Any
from urllib.parse import quote

import aiohttp
import imagecodecs
import numpy as np
import orjson
import yarl
from PIL import Image

from benchmarks import multipart
from benchmarks.dataset import Instance, Series
from benchmarks.timing import Result, VerificationError

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
ACCEPT_INSTANCES = 'multipart/related; type="application/dicom"; transfer-syntax=*'
ACCEPT_FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
JPEG = "image/jpeg"
REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_INSTANCE_UID = "00081155"
SOP_INSTANCE_UID = "00080018"


class StatusError(VerificationError):
    """The server answered with an HTTP status other than 200."""

    def __init__(self, what: str, status: int, body: bytes) -> None:
        super().__init__(f"{what}: HTTP {status}: {body[:200]!r}")
        self.status = status
        self.detail = _error_message(body)


@dataclass(frozen=True)
class FrameSyntax:
    """A transfer syntax to ask frames in (PS3.18 Table 8.7.3-5), and the imagecodecs decoders,
    tried in turn, that read an answer back to samples."""

    name: str
    media_type: str
    uid: str
    decoders: tuple[str, ...]

    @property
    def accept(self) -> str:
        return f'multipart/related; type="{self.media_type}"; transfer-syntax={self.uid}'


HTJ2K_LOSSLESS = FrameSyntax(
    "htj2k", "image/jphc", "1.2.840.10008.1.2.4.201", ("htj2k_decode", "jpeg2k_decode")
)
# Process 14, selection value 1. Baseline (.4.50) is 8-bit only: no match for a 16-bit CT.
JPEG_LOSSLESS = FrameSyntax(
    "jpegll", JPEG, "1.2.840.10008.1.2.4.70", ("ljpeg_decode", "jpegsof3_decode", "jpeg8_decode")
)

Check = Callable[[bytes], None]  # raises when a payload is not what was asked for


@dataclass(frozen=True)
class StowRequest:
    """A pre-encoded STOW-RS body and the instances it carries."""

    body: bytes
    content_type: str
    sop_uids: frozenset[str]


@dataclass(frozen=True)
class Query:
    """A QIDO-RS query and what every correct answer holds: `count` results, each with a
    distinct value of `tag` taken from `allowed`."""

    path: str
    params: dict[str, str]
    tag: str
    allowed: frozenset[str]
    count: int


def stow_request(instances: Sequence[Instance], single_part: bool) -> StowRequest:
    """Build the body once; `single_part` sends one bare application/dicom instance."""
    uids = frozenset(i.sop_uid for i in instances)
    if single_part:
        (only,) = instances
        return StowRequest(only.data, DICOM, uids)
    boundary = multipart.new_boundary()
    body = multipart.encode((i.data for i in instances), boundary, DICOM)
    return StowRequest(body, multipart.content_type(DICOM, boundary), uids)


def open_session(connections: int) -> aiohttp.ClientSession:
    """A keep-alive session with no compression, so bytes on the wire are the payload."""
    return aiohttp.ClientSession(
        # Orthanc closes idle connections after 1 s; dropping ours sooner avoids reusing one
        # it is closing (a POST on it would fail rather than be retried).
        connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=0.5),
        timeout=aiohttp.ClientTimeout(total=600),
        headers={"Accept-Encoding": "identity"},
        auto_decompress=False,
        read_bufsize=1 << 20,
    )


class DicomWebClient:
    """Timed, verified requests against one DICOMweb base URL."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        # (kind, SOP Instance UID, payload) -> its check and the results that carried it
        self._unchecked: dict[tuple[str, str, bytes], tuple[Check, list[Result]]] = {}

    def check_deferred(self) -> list[tuple[Result, str]]:
        """Check every distinct payload received since the last call; return the results
        whose payload failed, each with the reason. A payload byte-identical to one already
        held for the same instance is the same pixels, so it is decoded only once."""
        unchecked, self._unchecked = self._unchecked, {}
        failed = []
        for (kind, _, payload), (check, results) in unchecked.items():
            try:
                check(payload)
            except Exception as exc:  # a decoder's own error is a failed check too
                failed += [(r, f"{kind}: {exc}") for r in results]
        return failed

    async def store(self, request: StowRequest) -> Result:
        """POST /studies; expect 200 and one ReferencedSOPSequence item per instance."""
        headers = {"Content-Type": request.content_type, "Accept": DICOM_JSON}
        start = time.perf_counter()
        url = f"{self.base_url}/studies"
        async with self.session.post(url, data=request.body, headers=headers) as response:
            body = await response.read()
        latency = time.perf_counter() - start
        _expect_status(response, body, "STOW")
        if "json" in response.content_type:
            document = orjson.loads(body)
            stored = {
                item.get(REFERENCED_SOP_INSTANCE_UID, {}).get("Value", [None])[0]
                for item in _sequence(document, REFERENCED_SOP_SEQUENCE)
            }
            if stored != request.sop_uids or _sequence(document, FAILED_SOP_SEQUENCE):
                raise VerificationError(
                    f"STOW: {len(stored)} of {len(request.sop_uids)} instances referenced, "
                    f"{len(_sequence(document, FAILED_SOP_SEQUENCE))} failed"
                )
        return Result(latency, units=len(request.sop_uids))

    async def search(self, query: Query) -> Result:
        """QIDO-RS; expect 200 and exactly the results that `query` describes."""
        start = time.perf_counter()
        url = yarl.URL(self.base_url + query.path + _query_string(query.params), encoded=True)
        headers = {"Accept": DICOM_JSON}
        async with self.session.get(url, headers=headers) as response:
            body = await response.read()
        latency = time.perf_counter() - start
        _expect_status(response, body, "QIDO")
        values = [_first(item, query.tag) for item in orjson.loads(body)]
        if len(values) != query.count or len(set(values)) != len(values):
            raise VerificationError(f"QIDO {query.path}: {len(values)} results, not {query.count}")
        if not set(values) <= query.allowed:
            raise VerificationError(f"QIDO {query.path}: unexpected {query.tag} values")
        return Result(latency, units=len(values))

    async def series_metadata(self, series: Series) -> Result:
        """GET .../series/{uid}/metadata; expect one JSON object per instance of the series."""
        start = time.perf_counter()
        url = f"{self._series_url(series)}/metadata"
        async with self.session.get(url, headers={"Accept": DICOM_JSON}) as response:
            body = await response.read()
        latency = time.perf_counter() - start
        _expect_status(response, body, "metadata")
        uids = {_first(item, SOP_INSTANCE_UID) for item in orjson.loads(body)}
        if uids != {i.sop_uid for i in series.instances}:
            raise VerificationError(f"metadata: {len(uids)} instances, not {len(series.instances)}")
        return Result(latency, units=len(uids))

    async def retrieve_series(self, series: Series) -> Result:
        """GET .../series/{uid} as multipart; expect N parts totalling the stored file bytes."""
        start = time.perf_counter()
        headers = {"Accept": ACCEPT_INSTANCES}
        parts = await self._multipart(self._series_url(series), headers, "retrieve")
        latency = time.perf_counter() - start
        total = sum(p.size for p in parts)
        if len(parts) != len(series.instances) or total != series.total_bytes:
            raise VerificationError(
                f"retrieve: {len(parts)} parts / {total} bytes, "
                f"not {len(series.instances)} / {series.total_bytes}"
            )
        return Result(latency, units=len(parts), nbytes=total)

    async def frame(self, series: Series, instance: Instance) -> Result:
        """GET .../instances/{uid}/frames/1; expect one part of Rows*Columns*2 bytes."""
        start = time.perf_counter()
        url = f"{self._series_url(series)}/instances/{instance.sop_uid}/frames/1"
        parts = await self._multipart(url, {"Accept": ACCEPT_FRAMES}, "frame")
        latency = time.perf_counter() - start
        if [p.size for p in parts] != [series.frame_bytes]:
            raise VerificationError(
                f"frame: part sizes {[p.size for p in parts]}, not [{series.frame_bytes}]"
            )
        return Result(latency, units=1, nbytes=series.frame_bytes)

    async def transcoded_frame(
        self, series: Series, instance: Instance, syntax: FrameSyntax
    ) -> Result:
        """GET .../frames/1 in `syntax`; expect one part of its media type, which must decode to
        the source frame exactly (checked after the timed run, by `check_deferred`)."""
        start = time.perf_counter()
        url = f"{self._series_url(series)}/instances/{instance.sop_uid}/frames/1"
        what = f"frame as {syntax.name}"
        parts = await self._multipart(url, {"Accept": syntax.accept}, what, keep_bodies=True)
        latency = time.perf_counter() - start
        if len(parts) != 1:
            raise VerificationError(f"{what}: {len(parts)} parts, not 1")
        media, params = multipart.media_type_params(parts[0].headers.get("content-type", ""))
        if media != syntax.media_type or params.get("transfer-syntax", syntax.uid) != syntax.uid:
            raise VerificationError(f"{what}: part Content-Type {parts[0].headers}")
        payload = bytes(parts[0].body)
        check = partial(_check_frame, syntax, series.rows, series.columns, instance.frame)
        return self._defer(syntax.name, instance, payload, check, Result(latency, 1, len(payload)))

    async def rendered_jpeg(self, series: Series, instance: Instance) -> Result:
        """GET .../instances/{uid}/rendered as image/jpeg; expect a JPEG of Columns x Rows
        (decoded after the timed run, by `check_deferred`)."""
        start = time.perf_counter()
        url = f"{self._series_url(series)}/instances/{instance.sop_uid}/rendered"
        async with self.session.get(url, headers={"Accept": JPEG}) as response:
            body = await response.read()
        latency = time.perf_counter() - start
        _expect_status(response, body, "rendered")
        if response.content_type != JPEG:
            raise VerificationError(f"rendered: Content-Type {response.content_type!r}")
        check = partial(_check_picture, series.rows, series.columns)
        return self._defer("rendered", instance, body, check, Result(latency, 1, len(body)))

    def _defer(
        self, kind: str, instance: Instance, payload: bytes, check: Check, result: Result
    ) -> Result:
        entry = self._unchecked.setdefault((kind, instance.sop_uid, payload), (check, []))
        entry[1].append(result)
        return result

    def _series_url(self, series: Series) -> str:
        return f"{self.base_url}/studies/{series.study_uid}/series/{series.series_uid}"

    async def _multipart(
        self, url: str, headers: dict[str, str], what: str, keep_bodies: bool = False
    ) -> list[multipart.Part]:
        """GET a multipart/related response and parse it while it streams in."""
        async with self.session.get(url, headers=headers) as response:
            if response.status != 200:
                _expect_status(response, await response.read(), what)
            media, params = multipart.media_type_params(response.headers.get("Content-Type", ""))
            if media != "multipart/related" or "boundary" not in params:
                raise VerificationError(f"{what}: Content-Type {media!r} without boundary")
            parser = multipart.StreamingParser(params["boundary"], keep_bodies)
            async for chunk in response.content.iter_any():
                parser.feed(chunk)
        if not parser.complete:
            raise VerificationError(f"{what}: multipart body has no closing delimiter")
        return parser.parts


def _query_string(params: dict[str, str]) -> str:
    """Percent-encode all but the PN separator `^` and the wildcards `*` and `?` (PS3.18 8.3.4):
    Orthanc 1.10 does not decode query values, so `%5E` would never match there."""
    pairs = (f"{quote(k, safe='')}={quote(v, safe='^*?')}" for k, v in params.items())
    return "?" + "&".join(pairs) if params else ""


def _expect_status(response: aiohttp.ClientResponse, body: bytes, what: str) -> None:
    if response.status != 200:
        raise StatusError(what, response.status, body)


def _error_message(body: bytes) -> str:
    """The message of an error body: Orthanc's `Details`, ours `error.message`, else the text."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, dict):
        error = document.get("error")
        found = document.get("Details") or (
            error.get("message") if isinstance(error, dict) else None
        )
        if isinstance(found, str):
            return found
    return " ".join(body[:300].decode("utf-8", "replace").split())


def _check_frame(
    syntax: FrameSyntax, rows: int, columns: int, frame: bytes, payload: bytes
) -> None:
    """The payload decodes, with the first of `syntax.decoders` that can read it, to exactly
    the source frame's samples (compared bit for bit: lossless codecs may answer unsigned)."""
    reasons = []
    for name in syntax.decoders:
        try:
            decoded = np.asarray(getattr(imagecodecs, name)(payload))
            break
        except Exception as exc:  # imagecodecs raises its own per-codec error types
            reasons.append(f"{name}: {exc}")
    else:
        raise VerificationError(f"no decoder read the part ({'; '.join(reasons)})")
    source = np.frombuffer(frame, "<i2").reshape(rows, columns)
    if decoded.shape != source.shape or decoded.dtype.itemsize != source.dtype.itemsize:
        raise VerificationError(
            f"decoded {decoded.dtype} {decoded.shape}, not int16 {rows}x{columns}"
        )
    if not np.array_equal(decoded.view(np.uint16), source.view(np.uint16)):
        raise VerificationError("decoded pixels differ from the source frame")


def _check_picture(rows: int, columns: int, payload: bytes) -> None:
    """The payload is a complete JPEG of Columns x Rows pixels."""
    with Image.open(BytesIO(payload)) as image:
        image.load()
        if image.format != "JPEG" or image.size != (columns, rows):
            raise VerificationError(f"{image.format} of {image.size}, not JPEG of {columns}x{rows}")


def _sequence(document: Any, tag: str) -> list[Any]:
    """Items of a sequence attribute in a DICOM JSON object (PS3.18 F.2), [] when absent."""
    return list((document.get(tag) or {}).get("Value", []))


def _first(item: Any, tag: str) -> Any:
    values = (item.get(tag) or {}).get("Value") or [None]
    return values[0]
