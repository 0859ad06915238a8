"""Store transaction (STOW-RS, PS3.18 10.5): POST /studies[/{study}].

Each part streams to a staging blob; when it ends, the instance is stored through the
service (blob durable, then the index row) while the next parts arrive, a few at once, so a
request holds no part in memory whatever its size. A bad part fails alone (FailedSOPSequence)
and never touches what is already stored. Broken framing answers 400 and keeps the parts
completed before it. A body of more than `max_parts_per_request` parts is read no further:
the parts before are stored and listed, and one failure (A700) stands for the rest.
"""

import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import anyio
import orjson
from anyio.abc import TaskGroup
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from pacs.dicom.dicom_xml import to_native_xml
from pacs.http.addressing import archive_of, links_of, path_uid, store_of
from pacs.http.errors import NotAcceptable, UnsupportedMediaType
from pacs.http.media_types import Offer, negotiate, parse_media_type
from pacs.http.multipart_reader import (
    MultipartError,
    MultipartReader,
    PartData,
    PartEnd,
    PartStart,
)
from pacs.http.transaction import Transaction
from pacs.service.archive import Archive
from pacs.service.errors import InvalidArgument
from pacs.service.failures import CANNOT_UNDERSTAND, OUT_OF_RESOURCES, PROCESSING_FAILURE
from pacs.service.staging import StagingWriter
from pacs.service.store_instances import (
    StoreOptions,
    StoreOutcome,
    commit_staged,
    count,
    index_committed,
    out_of_resources,
    storage_class,
)
from pacs.service.stores import StoreContext
from pacs.transactions.store_metadata import METADATA_TYPES, MetadataReceiver
from pacs.transactions.store_response import response_dataset
from storage.protocols import StagedBlob

DICOM = "application/dicom"
_RESPONSE_OFFERS = (Offer(False, "application/dicom+xml"), Offer(False, "application/dicom+json"),
                    Offer(False, "application/json"), Offer(False, "application/xml"))
_XML = {"application/dicom+xml", "application/xml"}
Event = PartStart | PartData | PartEnd
T = TypeVar("T")
_NAMED_KEPT = 20  # SOP Instance UIDs a 400 names of the instances stored before it
log = logging.getLogger("pacs")


async def store_instances(request: Request) -> Response:
    """Store the instances of a multipart/related or single application/dicom body; with PUT
    (the Cloud Healthcare API's v1beta1 upsert), each replaces an instance stored under its
    SOP Instance UID with other content."""
    replace = request.method == "PUT"
    if replace and request.path_params.get("version") != "v1beta1":
        # only v1beta1 has the upsert: elsewhere PUT is a method the resource lacks
        allowed = "GET, HEAD, POST, DELETE, OPTIONS" if "study" in request.path_params \
            else "GET, HEAD, POST, OPTIONS"
        raise HTTPException(405, "PUT (upsert) is a Cloud Healthcare API v1beta1 method",
                            headers={"Allow": allowed})
    archive, store = archive_of(request), await store_of(request)
    study = path_uid(request, "study")
    default = store.profile.store_response_type
    offers = sorted(_RESPONSE_OFFERS, key=lambda offer: offer.media_type != default)
    try:
        response_type = negotiate(request.headers.get("accept"), offers, []).media_type
    except NotAcceptable:  # STOW answers even an odd Accept (Google's docs send one)
        response_type = default
    part_type, events = _events(request, archive)  # part_type None: a single-part body
    options = StoreOptions(study, replace,
                           storage_class(request.headers.get("storage-class")))
    receiver = (MetadataReceiver(archive, store, options, part_type)
                if part_type in METADATA_TYPES
                else _Receiver(archive, store, options))
    try:
        await receiver.receive(events)
    finally:  # each instance once, whatever failed it: parsing, staging or storing
        for outcome in receiver.results:
            count(outcome)
    results = receiver.results
    body = response_dataset(links_of(request), study, results, store.profile.failure_reason)
    status = _status(results, store.profile.partial_store_status,
                     single=part_type is None)
    if response_type in _XML:
        return Response(to_native_xml(body, store.profile.xml_namespace), status,
                        media_type="application/dicom+xml")
    return Response(orjson.dumps(body), status, media_type=response_type)


def _status(results: list[StoreOutcome], partial: int, single: bool) -> int:
    """PS3.18 10.5.3: 200 all stored, `partial` (202) some, 409 none; 507 Insufficient
    Storage (RFC 4918 11.5) when the one instance of a single-part body could not be kept."""
    stored = sum(1 for r in results if r.stored)
    if stored == len(results):
        return 200
    if stored:
        return partial
    return 507 if single and results[0].reason is OUT_OF_RESOURCES else 409


def _events(request: Request, archive: Archive) -> tuple[str | None, AsyncIterator[Event]]:
    """The body's part type (PS3.18 10.5.1.2; None for a single application/dicom body) and
    its part events; 400/415 for a Content-Type we cannot read."""
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
        return None, _single_part(request)
    if media.name != "multipart/related":
        raise unsupported
    part_type = media.params.get("type", DICOM).lower()
    if part_type != DICOM and part_type not in METADATA_TYPES:
        raise UnsupportedMediaType(f"multipart/related parts of type {part_type!r} are not "
                                   f"supported; send {accepted}")
    boundary = media.params.get("boundary")
    if not boundary:
        raise InvalidArgument("the multipart/related Content-Type has no boundary parameter")
    return part_type, _multipart(request, boundary, archive.settings.max_part_header_bytes)


async def _single_part(request: Request) -> AsyncIterator[Event]:
    yield PartStart({"content-type": DICOM})
    empty = True
    async for chunk in _body(request):
        empty = False
        yield PartData(chunk)
    if empty:
        raise InvalidArgument(f"the {DICOM} request body is empty")
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
        raise InvalidArgument(f"malformed multipart/related body: {exc}") from exc


async def _body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect as exc:
        raise InvalidArgument("the client closed the connection before the body was complete") \
            from exc


def _unread(limit: int) -> StoreOutcome:
    """The failure standing for the parts after the first `limit`: Refused, Out of Resources
    (PS3.4 B.2.3), as a C-STORE SCP that can take no more answers."""
    return StoreOutcome(reason=OUT_OF_RESOURCES, detail=(
        f"the request has more than {limit} parts and at most {limit} are read: the parts "
        f"after part {limit} were not read nor stored; send them in another request"))


class _Receiver:
    """Writes each part to staging and, once it is complete, parses it and makes it durable
    while the next parts arrive (at most `settings.stores_per_request` at once); parts enter
    the index in their order, so a request's outcome is the same as if stored one by one.
    Only the small per-part outcomes stay in memory."""

    def __init__(self, archive: Archive, store: StoreContext, options: StoreOptions) -> None:
        self._archive = archive
        self._store = store
        self._options = options
        self.results: list[StoreOutcome] = []
        self._current: StoreOutcome | None = None
        self._writer: StagingWriter | None = None
        self._slots = anyio.Semaphore(archive.settings.stores_per_request)
        self._indexed = anyio.Event()  # the previous part's turn at the index is over
        self._indexed.set()
        self._max_parts = archive.settings.max_parts_per_request

    async def receive(self, events: AsyncIterator[Event]) -> None:
        """Consume the events; on a malformed body say how many instances were kept. Parts
        already complete are always stored to the end, whatever happens after them. Parts
        after the first `max_parts_per_request` are not read: one failure stands for them."""
        failure: Exception | None = None
        async with anyio.create_task_group() as stores:
            try:
                async for event in events:
                    if isinstance(event, PartStart) and len(self.results) == self._max_parts:
                        self.results.append(_unread(self._max_parts))
                        break
                    await self._handle(event, stores)
            except Exception as exc:  # raised once the complete parts are stored
                failure = exc
            finally:
                if self._writer is not None:
                    await self._writer.discard()
        if isinstance(failure, InvalidArgument):
            kept = [r.sop_uid for r in self.results if r.stored and r is not self._current]
            if kept:
                named = ", ".join(kept[:_NAMED_KEPT]) + (", …" if len(kept) > _NAMED_KEPT
                                                         else "")
                failure.message += (f"; the {len(kept)} instance(s) completed before it were "
                                    f"stored (SOPInstanceUID {named})")
        if failure is not None:
            raise failure
        if not self.results:
            raise InvalidArgument("the request body holds no DICOM instance")

    async def _handle(self, event: Event, stores: TaskGroup) -> None:
        if isinstance(event, PartStart):
            self._current = StoreOutcome()
            self.results.append(self._current)
            settings = self._archive.settings
            self._writer = StagingWriter(self._archive.blobs, settings.stage_buffer_bytes,
                                         settings.max_instance_bytes, "an instance")
            part_type = event.headers.get("content-type", DICOM).split(";")[0].strip().lower()
            if part_type != DICOM:
                self._current.fail(CANNOT_UNDERSTAND, f"part of type {part_type!r} is not "
                                   f"{DICOM}")
                self._writer = None
        elif self._writer is None or self._current is None:
            return  # the bytes of a part that has already failed
        elif isinstance(event, PartData):
            await self._stage(self._writer.add(event.data))
        elif (staged := await self._stage(self._writer.finish())) is not None:
            self._writer = None
            await self._slots.acquire()
            previous, self._indexed = self._indexed, anyio.Event()
            stores.start_soon(self._store_part, staged, self._current, previous,
                              self._indexed)
            self._current = None

    async def _stage(self, step: Awaitable[T]) -> T | None:
        """`step` of the current part's staging; if the staging volume cannot take the
        bytes (full, unwritable), the part fails alone as out of resources and the rest of
        its bytes are skipped (None)."""
        assert self._writer is not None and self._current is not None
        try:
            return await step
        except OSError as exc:
            await self._writer.discard()
            self._writer = None
            out_of_resources(self._current, exc)
            return None

    async def _store_part(self, staged: StagedBlob, outcome: StoreOutcome,
                          previous: anyio.Event, indexed: anyio.Event) -> None:
        """Store one part, indexing it after `previous`; a fault of ours fails that part
        alone (logged), not its siblings."""
        try:
            try:
                committed = await commit_staged(self._archive, self._store, staged, outcome,
                                                self._options)
            finally:
                await previous.wait()  # whatever happened, no later part goes first
            if committed is not None:
                await index_committed(self._archive, self._store, committed, outcome,
                                      self._options)
        except Exception:
            log.exception("storing instance %s failed", outcome.sop_uid or "(unread)")
            outcome.fail(PROCESSING_FAILURE, "the instance could not be stored because of "
                         "an error in the server; it was logged")
        finally:
            indexed.set()
            self._slots.release()


_BODIES = (DICOM, *(f'multipart/related; type="{t}"' for t in (DICOM, *METADATA_TYPES)))
UPSERT = Transaction("Store Instances (upsert, v1beta1)", "dicomWebUpdate", store_instances,
                     _RESPONSE_OFFERS, _BODIES)
STORE = Transaction("Store Instances", "dicomWebWrite", store_instances, _RESPONSE_OFFERS,
                    _BODIES)
