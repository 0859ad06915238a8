"""Store transaction (STOW-RS, PS3.18 10.5): POST /studies[/{study}].

Each part is streamed to a staging blob and its header parsed in a worker thread as it ends;
blobs are made durable and indexed only once the whole body has been read, so a request with
broken framing stores nothing. A bad part fails alone (FailedSOPSequence) and never touches
what is already stored.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from pacs.archive import Archive, archive_of, path_uid, resolve_store
from pacs.dicom_codecs.dicom_xml import to_native_xml
from pacs.errors import (
    CANNOT_UNDERSTAND,
    DATA_SET_DOES_NOT_MATCH,
    OUT_OF_RESOURCES,
    PROCESSING_FAILURE,
    BadRequest,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from pacs.http.media_types import Offer, negotiate, parse_media_type
from pacs.http.multipart_reader import (
    MultipartError,
    MultipartReader,
    PartData,
    PartEnd,
    PartStart,
)
from pacs.http.resource_urls import dicomweb_root, instance_url, study_url
from storage.ingest import IngestError, IngestRecord, read_instance_file
from storage.protocols import BlobStore, StagedBlob
from storage.rows import AddOutcome

DICOM = "application/dicom"
_RESPONSE_OFFERS = (Offer(False, "application/dicom+xml"), Offer(False, "application/dicom+json"),
                    Offer(False, "application/json"), Offer(False, "application/xml"))
_XML = {"application/dicom+xml", "application/xml"}
GOOGLE_CREATOR = "GOOGLE"


@dataclass
class _Part:
    """One received part: its staged blob, and either the parsed record or why it failed."""

    staged: StagedBlob | None = None
    record: IngestRecord | None = None
    committed: bool = False
    reason: int = 0
    detail: str = ""
    sop_class_uid: str = ""
    sop_uid: str = ""

    def fail(self, reason: int, detail: str) -> None:
        self.reason, self.detail = reason, detail

    @property
    def staged_bytes(self) -> int:
        return self.staged.size if self.staged is not None else 0


async def store_instances(request: Request) -> Response:
    """Store the instances of a multipart/related or single application/dicom body."""
    archive = archive_of(request)
    store = await resolve_store(request)
    study = path_uid(request, "study") if "study" in request.path_params else None
    accept = request.headers.get("accept")
    try:
        response_type = negotiate(accept, _RESPONSE_OFFERS, []).media_type
    except NotAcceptable:  # STOW answers even an odd Accept (Google's docs send one)
        response_type = "application/dicom+xml"
    parts = await _receive(request, archive)
    try:
        if not parts:
            raise BadRequest("the request body holds no DICOM instance")
        for part in parts:
            if part.record is not None and study and part.record.study_uid != study:
                part.fail(DATA_SET_DOES_NOT_MATCH, f"StudyInstanceUID {part.record.study_uid} "
                          f"differs from the study in the request URL, {study}")
        for part in parts:
            if part.record is not None and not part.reason:
                await _commit(archive, store.id, part)
    finally:
        await _discard(parts)
    body = _response_dataset(dicomweb_root(request), study, parts)
    stored = sum(1 for p in parts if not p.reason)
    status = 200 if stored == len(parts) else 202 if stored else 409
    if response_type in _XML:
        return Response(to_native_xml(body), status, media_type="application/dicom+xml")
    return Response(orjson.dumps(body), status, media_type=response_type)


async def _receive(request: Request, archive: Archive) -> list[_Part]:
    """Read the body into staged parts; 400/413/415 for a malformed request."""
    content_type = request.headers.get("content-type", "")
    unsupported = UnsupportedMediaType(f"Content-Type {content_type!r} is not supported; send "
                                       f'multipart/related; type="{DICOM}" or {DICOM}')
    try:
        media = parse_media_type(content_type)
    except ValueError as exc:
        raise unsupported from exc
    if media.name == DICOM:
        events = _single_part(request)
    elif media.name == "multipart/related":
        part_type = media.params.get("type", DICOM).lower()
        if part_type != DICOM:
            raise UnsupportedMediaType(f"multipart/related parts of type {part_type!r} are not "
                                       f"supported; the parts must be {DICOM}")
        boundary = media.params.get("boundary")
        if not boundary:
            raise BadRequest("the multipart/related Content-Type has no boundary parameter")
        events = _multipart(request, boundary, archive.settings.max_part_header_bytes)
    else:
        raise unsupported
    receiver = _Receiver(archive)
    try:
        async for event in events:
            await receiver.handle(event)
        if media.name == DICOM and not receiver.parts[0].staged_bytes:
            raise BadRequest(f"the {DICOM} request body is empty")
    except BaseException:
        await receiver.abandon()
        raise
    return receiver.parts


async def _single_part(request: Request) -> AsyncIterator[PartStart | PartData | PartEnd]:
    yield PartStart({"content-type": DICOM})
    async for chunk in _body(request):
        yield PartData(chunk)
    yield PartEnd()


async def _multipart(request: Request, boundary: str,
                     max_header_bytes: int) -> AsyncIterator[PartStart | PartData | PartEnd]:
    try:
        reader = MultipartReader(boundary, max_header_bytes=max_header_bytes)
        async for chunk in _body(request):
            for event in reader.feed(chunk):
                yield event
        reader.close()
    except MultipartError as exc:
        raise BadRequest(f"malformed multipart/related body: {exc}") from exc


async def _body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect as exc:
        raise BadRequest("the client closed the connection before the body was complete") \
            from exc


class _Receiver:
    """Buffers each part's bytes and hands them to a worker thread in large writes; the last
    write of a part also parses its header, so a part costs few thread hops."""

    def __init__(self, archive: Archive) -> None:
        self._blobs = archive.blobs
        self._limit = archive.settings.max_instance_bytes
        self._batch = archive.settings.stage_buffer_bytes
        self.parts: list[_Part] = []
        self._buffer = bytearray()
        self._current: _Part | None = None

    async def handle(self, event: PartStart | PartData | PartEnd) -> None:
        if isinstance(event, PartStart):
            self._current = _Part()
            self.parts.append(self._current)
            part_type = event.headers.get("content-type", DICOM).split(";")[0].strip().lower()
            if part_type != DICOM:
                self._current.fail(CANNOT_UNDERSTAND, f"part of type {part_type!r} is not "
                                   f"{DICOM}")
        elif isinstance(event, PartData):
            self._buffer += event.data
            if len(self._buffer) >= self._batch:
                await self._write(last=False)
        elif self._current is not None:
            await self._write(last=True)
            self._current = None

    async def _write(self, last: bool) -> None:
        part, data = self._current, bytes(self._buffer)
        self._buffer.clear()
        if part is None or part.reason:
            return
        if part.staged_bytes + len(data) > self._limit:
            raise PayloadTooLarge(f"an instance is larger than the limit of {self._limit} bytes")
        await anyio.to_thread.run_sync(_stage, self._blobs, part, data, last)

    async def abandon(self) -> None:
        await _discard(self.parts)


def _stage(blobs: BlobStore, part: _Part, data: bytes, last: bool) -> None:
    """Append `data` to the part's staged blob (created on the first bytes); after the last
    bytes, parse the header (PS3.10 file, never the pixels)."""
    if part.staged is None:
        part.staged = blobs.stage()
    part.staged.write(data)
    if not last:
        return
    part.staged.flush()
    try:
        part.record = read_instance_file(part.staged.path)
    except IngestError as exc:
        part.fail(CANNOT_UNDERSTAND, str(exc))
        part.sop_class_uid, part.sop_uid = exc.sop_class_uid, exc.sop_instance_uid
        return
    part.sop_class_uid, part.sop_uid = part.record.sop_class_uid, part.record.sop_uid


async def _discard(parts: list[_Part]) -> None:
    leftovers = [p.staged for p in parts if p.staged is not None and not p.committed]
    if leftovers:
        def discard_all() -> None:
            for staged in leftovers:
                staged.discard()
        await anyio.to_thread.run_sync(discard_all)


async def _commit(archive: Archive, store_id: int, part: _Part) -> None:
    """Blob durable first, then the index row; a refused row removes its blob again."""
    record, staged = part.record, part.staged
    assert record is not None and staged is not None
    size, sha256 = staged.size, staged.sha256
    try:
        name = await anyio.to_thread.run_sync(archive.blobs.commit, staged)
    except OSError as exc:
        part.fail(OUT_OF_RESOURCES, f"the instance could not be written: {exc.strerror}")
        return
    part.committed = True
    try:
        outcome = await archive.index.add_instance(store_id, record, name, size, sha256)
    except BaseException:
        await anyio.to_thread.run_sync(archive.blobs.delete, name)
        raise
    if outcome is not AddOutcome.STORED:
        await anyio.to_thread.run_sync(archive.blobs.delete, name)
    _settle(part, outcome)


def _settle(part: _Part, outcome: AddOutcome) -> None:
    record = part.record
    assert record is not None
    if outcome is AddOutcome.CONFLICT:
        part.fail(PROCESSING_FAILURE, f"an instance with SOPInstanceUID {record.sop_uid} already "
                  "exists with different content; the stored instance is unchanged")
    elif outcome is AddOutcome.SERIES_CONFLICT:
        part.fail(PROCESSING_FAILURE, f"SeriesInstanceUID {record.series_uid} already belongs "
                  f"to another study than {record.study_uid}")


def _response_dataset(root: str, study: str | None, parts: list[_Part]) -> dict[str, Any]:
    """Store Instances Response Module (PS3.18 Table 10.5.3-2), as DICOM JSON."""
    stored, failed = [], []
    for part in parts:
        item: dict[str, Any] = {}
        if part.sop_class_uid:
            item["00081150"] = {"vr": "UI", "Value": [part.sop_class_uid]}
        if part.sop_uid:
            item["00081155"] = {"vr": "UI", "Value": [part.sop_uid]}
        if part.reason:
            item["00081197"] = {"vr": "US", "Value": [part.reason]}
            item["00090010"] = {"vr": "LO", "Value": [GOOGLE_CREATOR]}
            item["00091097"] = {"vr": "LT", "Value": [part.detail]}
            failed.append(item)
        else:
            record = part.record
            assert record is not None
            item["00081190"] = {"vr": "UR", "Value": [instance_url(
                root, record.study_uid, record.series_uid, record.sop_uid)]}
            stored.append(item)
    studies = {p.record.study_uid for p in parts if p.record is not None}
    target = study or (studies.pop() if len(studies) == 1 else None)
    # RetrieveURL is Type 2 (PS3.18 Table I.1-1): empty when the parts span several studies.
    body: dict[str, Any] = {"00081190": {"vr": "UR", "Value": [study_url(root, target)]}
                            if target else {"vr": "UR"}}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": stored}
    return body
