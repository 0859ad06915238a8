"""Store transaction (STOW-RS, PS3.18 10.5): POST /studies[/{study}].

Each part streams to a staging blob; when it ends, its header is parsed in a worker thread and
the instance is stored at once (blob durable, then the index row), so a request holds one part
at a time whatever its size. A bad part fails alone (FailedSOPSequence) and never touches what
is already stored. Broken framing answers 400 and keeps the parts completed before it.
"""

from collections.abc import AsyncIterator

import anyio
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from pacs.archive import Archive, archive_of, path_uid, resolve_store
from pacs.dicom_codecs.dicom_xml import to_native_xml
from pacs.errors import (
    CANNOT_UNDERSTAND,
    DATA_SET_DOES_NOT_MATCH,
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
from pacs.http.resource_urls import dicomweb_root
from pacs.transactions.store_metadata import METADATA_TYPES, MetadataReceiver
from pacs.transactions.store_outcomes import Outcome, commit, response_dataset
from storage.ingest import IngestError, IngestRecord, read_instance_file
from storage.protocols import BlobStore, StagedBlob

DICOM = "application/dicom"
_RESPONSE_OFFERS = (Offer(False, "application/dicom+xml"), Offer(False, "application/dicom+json"),
                    Offer(False, "application/json"), Offer(False, "application/xml"))
_XML = {"application/dicom+xml", "application/xml"}
Event = PartStart | PartData | PartEnd


async def store_instances(request: Request) -> Response:
    """Store the instances of a multipart/related or single application/dicom body."""
    archive = archive_of(request)
    store = await resolve_store(request)
    study = path_uid(request, "study") if "study" in request.path_params else None
    try:
        response_type = negotiate(request.headers.get("accept"), _RESPONSE_OFFERS, []).media_type
    except NotAcceptable:  # STOW answers even an odd Accept (Google's docs send one)
        response_type = "application/dicom+xml"
    part_type, events = _events(request, archive)
    receiver = (MetadataReceiver(archive, store.id, study, part_type)
                if part_type in METADATA_TYPES
                else _Receiver(archive, store.id, study))
    await receiver.receive(events)
    results = receiver.results
    body = response_dataset(dicomweb_root(request), study, results)
    stored = sum(1 for r in results if not r.reason)
    status = 200 if stored == len(results) else 202 if stored else 409
    if response_type in _XML:
        return Response(to_native_xml(body), status, media_type="application/dicom+xml")
    return Response(orjson.dumps(body), status, media_type=response_type)


def _events(request: Request, archive: Archive) -> tuple[str, AsyncIterator[Event]]:
    """The body's part type (PS3.18 10.5.1.2) and its part events; 400/415 for a
    Content-Type we cannot read."""
    content_type = request.headers.get("content-type", "")
    accepted = (f'multipart/related; type="{DICOM}" (or "{METADATA_TYPES[0]}" or '
                f'"{METADATA_TYPES[1]}")')
    unsupported = UnsupportedMediaType(f"Content-Type {content_type!r} is not supported; send "
                                       f"{accepted} or {DICOM}")
    try:
        media = parse_media_type(content_type)
    except ValueError as exc:
        raise unsupported from exc
    if media.name == DICOM:
        return DICOM, _single_part(request)
    if media.name != "multipart/related":
        raise unsupported
    part_type = media.params.get("type", DICOM).lower()
    if part_type != DICOM and part_type not in METADATA_TYPES:
        raise UnsupportedMediaType(f"multipart/related parts of type {part_type!r} are not "
                                   f"supported; send {accepted}")
    boundary = media.params.get("boundary")
    if not boundary:
        raise BadRequest("the multipart/related Content-Type has no boundary parameter")
    return part_type, _multipart(request, boundary, archive.settings.max_part_header_bytes)


async def _single_part(request: Request) -> AsyncIterator[Event]:
    yield PartStart({"content-type": DICOM})
    empty = True
    async for chunk in _body(request):
        empty = False
        yield PartData(chunk)
    if empty:
        raise BadRequest(f"the {DICOM} request body is empty")
    yield PartEnd()


async def _multipart(request: Request, boundary: str, max_header_bytes: int
                     ) -> AsyncIterator[Event]:
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
    """Writes each part to staging in large buffered writes (worker threads) and stores it as
    soon as it is complete; only the small per-part results stay in memory."""

    def __init__(self, archive: Archive, store_id: int, study: str | None) -> None:
        self._archive = archive
        self._store_id = store_id
        self._study = study
        self._limit = archive.settings.max_instance_bytes
        self._batch = archive.settings.stage_buffer_bytes
        self.results: list[Outcome] = []
        self._buffer = bytearray()
        self._staged: StagedBlob | None = None
        self._current: Outcome | None = None

    async def receive(self, events: AsyncIterator[Event]) -> None:
        """Consume the events; on a malformed body say how many instances were kept."""
        try:
            async for event in events:
                await self._handle(event)
        except BadRequest as exc:
            kept = sum(1 for r in self.results if not r.reason and r is not self._current)
            if kept:
                exc.message += f"; the {kept} instance(s) completed before it were stored"
            raise
        finally:
            await self._discard()
        if not self.results:
            raise BadRequest("the request body holds no DICOM instance")

    async def _handle(self, event: Event) -> None:
        if isinstance(event, PartStart):
            self._current = Outcome()
            self.results.append(self._current)
            part_type = event.headers.get("content-type", DICOM).split(";")[0].strip().lower()
            if part_type != DICOM:
                self._current.fail(CANNOT_UNDERSTAND, f"part of type {part_type!r} is not "
                                   f"{DICOM}")
        elif isinstance(event, PartData):
            self._buffer += event.data
            if len(self._buffer) >= self._batch:
                await self._write(last=False)
        elif self._current is not None:
            record = await self._write(last=True)
            if record is not None:
                await self._store(self._current, record)
            await self._discard()
            self._current = None

    async def _write(self, last: bool) -> IngestRecord | None:
        """Append the buffered bytes; after the last ones, the parsed header (or None)."""
        result, data = self._current, bytes(self._buffer)
        self._buffer.clear()
        if result is None or result.reason:
            return None
        size = self._staged.size if self._staged is not None else 0
        if size + len(data) > self._limit:
            raise PayloadTooLarge(f"an instance is larger than the limit of {self._limit} bytes")
        self._staged, record = await anyio.to_thread.run_sync(
            _stage, self._archive.blobs, self._staged, result, data, last)
        return record

    async def _store(self, result: Outcome, record: IngestRecord) -> None:
        if self._study and record.study_uid != self._study:
            result.fail(DATA_SET_DOES_NOT_MATCH, f"StudyInstanceUID {record.study_uid} differs "
                        f"from the study in the request URL, {self._study}")
            return
        assert self._staged is not None
        staged, self._staged = self._staged, None
        await commit(self._archive, self._store_id, staged, record, result)

    async def _discard(self) -> None:
        staged, self._staged = self._staged, None
        if staged is not None:
            await anyio.to_thread.run_sync(staged.discard)


def _stage(blobs: BlobStore, staged: StagedBlob | None, result: Outcome, data: bytes,
           last: bool) -> tuple[StagedBlob, IngestRecord | None]:
    """Append `data` to the part's staged blob (created on its first bytes); after the last
    bytes, close it and parse the header (never the pixels), noting the UIDs in `result`, or
    why it cannot be stored. One worker-thread hop per call."""
    staged = staged or blobs.stage()
    staged.write(data)
    if not last:
        return staged, None
    staged.close()
    try:
        record = read_instance_file(staged.path)
    except IngestError as exc:
        result.fail(CANNOT_UNDERSTAND, str(exc))
        result.sop_class_uid, result.sop_uid = exc.sop_class_uid, exc.sop_instance_uid
        return staged, None
    result.sop_class_uid, result.sop_uid = record.sop_class_uid, record.sop_uid
    result.study_uid, result.series_uid = record.study_uid, record.series_uid
    return staged, record


