"""DICOMweb requests (PS3.18 Store, Search, Retrieve) that time and verify every response.

aiohttp rather than httpx: the client shares 2 cores with the server, so its CPU per request
must stay small. With 50 small GETs in flight, httpx 0.28 took ~1.3 ms of client CPU per
request and aiohttp 3.14 ~0.12 ms (10x), which would otherwise cap and skew every rate.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import yarl

from benchmarks import multipart
from benchmarks.dataset import Instance, Series
from benchmarks.timing import Result, VerificationError

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
ACCEPT_INSTANCES = 'multipart/related; type="application/dicom"; transfer-syntax=*'
ACCEPT_FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_INSTANCE_UID = "00081155"
SOP_INSTANCE_UID = "00080018"


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

    def _series_url(self, series: Series) -> str:
        return f"{self.base_url}/studies/{series.study_uid}/series/{series.series_uid}"

    async def _multipart(
        self, url: str, headers: dict[str, str], what: str
    ) -> list[multipart.Part]:
        """GET a multipart/related response and parse it while it streams in."""
        async with self.session.get(url, headers=headers) as response:
            if response.status != 200:
                _expect_status(response, await response.read(), what)
            media, params = multipart.media_type_params(response.headers.get("Content-Type", ""))
            if media != "multipart/related" or "boundary" not in params:
                raise VerificationError(f"{what}: Content-Type {media!r} without boundary")
            parser = multipart.StreamingParser(params["boundary"])
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
        raise VerificationError(f"{what}: HTTP {response.status}: {body[:200]!r}")


def _sequence(document: Any, tag: str) -> list[Any]:
    """Items of a sequence attribute in a DICOM JSON object (PS3.18 F.2), [] when absent."""
    return list((document.get(tag) or {}).get("Value", []))


def _first(item: Any, tag: str) -> Any:
    values = (item.get(tag) or {}).get("Value") or [None]
    return values[0]
