"""Store from metadata and bulk data (PS3.18 10.5.1.2.2-3): `multipart/related` whose type is
`application/dicom+json` (a JSON array of instances) or `application/dicom+xml` (one Native
DICOM Model document per part), with bulk data parts matched by Content-Location.

Metadata parts are held in memory (they are small, and bounded); bulk parts stream to staging
blobs; a body of more than `max_parts_per_request` parts is refused (413). When the body
ends, each instance is built as Part 10, staged, parsed and stored like any other, so an
instance that cannot be built fails alone and the others are stored.
"""

from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import orjson

from pacs.dicom.dicom_xml import XmlModelError, from_native_xml
from pacs.dicom.json_values import MAX_SEQUENCE_DEPTH, sequence_depth
from pacs.dicom.transfer_syntaxes import OCTET_STREAM
from pacs.http.media_types import parse_media_type
from pacs.http.multipart_reader import PartData, PartEnd, PartStart
from pacs.service.archive import Archive
from pacs.service.errors import InvalidArgument, TooLarge
from pacs.service.failures import CANNOT_UNDERSTAND, DATA_SET_DOES_NOT_MATCH
from pacs.service.instance_builder import (
    BuildError,
    BulkPart,
    build_part10,
    bulk_references,
    identity,
)
from pacs.service.staging import StagingWriter, stage_all
from pacs.service.store_instances import (
    StoreOptions,
    StoreOutcome,
    out_of_resources,
    store_staged,
)
from pacs.service.stores import StoreContext
from storage.protocols import BlobStore, StagedBlob

DICOM_JSON = "application/dicom+json"
DICOM_XML = "application/dicom+xml"
METADATA_TYPES = (DICOM_JSON, DICOM_XML)
Event = PartStart | PartData | PartEnd


@dataclass
class _Part:
    """One part as received: metadata bytes in memory, or bulk bytes in a staged blob."""

    media_type: str
    transfer_syntax: str | None
    location: str | None
    metadata: bytearray | None = None
    writer: StagingWriter | None = None
    staged: StagedBlob | None = None


class MetadataReceiver:
    """Receives the parts, then builds and stores each instance the metadata describes."""

    def __init__(self, archive: Archive, store: StoreContext, options: StoreOptions,
                 metadata_type: str) -> None:
        self._archive = archive
        self._options = options
        self._metadata_type = metadata_type
        self._store = store
        self._metadata_limit = archive.settings.max_metadata_bytes
        self._metadata_bytes = 0
        self._parts: list[_Part] = []
        self.results: list[StoreOutcome] = []

    async def receive(self, events: AsyncIterator[Event]) -> None:
        try:
            async for event in events:
                await self._handle(event)
            await self._store_all()
        finally:
            for part in self._parts:
                if part.writer is not None:
                    await part.writer.discard()
                if part.staged is not None:
                    await anyio.to_thread.run_sync(part.staged.discard)
        if not self.results:
            raise InvalidArgument("the request body holds no DICOM instance metadata")

    async def _handle(self, event: Event) -> None:
        if isinstance(event, PartStart):
            limit = self._archive.settings.max_parts_per_request
            if len(self._parts) == limit:  # instances are built once every part is read
                raise TooLarge(f"the request has more than {limit} parts; at most {limit} "
                               "are read")
            part = _start(event.headers, self._metadata_type, not self._parts)
            if part.metadata is None:
                settings = self._archive.settings
                part.writer = StagingWriter(self._archive.blobs, settings.stage_buffer_bytes,
                                            settings.max_instance_bytes, "a bulk data part")
            self._parts.append(part)
            return
        part = self._parts[-1]
        if isinstance(event, PartData):
            if part.metadata is not None:
                self._metadata_bytes += len(event.data)
                if self._metadata_bytes > self._metadata_limit:
                    raise TooLarge(f"the metadata parts exceed {self._metadata_limit} bytes")
                part.metadata += event.data
            elif part.writer is not None:
                await part.writer.add(event.data)
        elif part.writer is not None:
            writer, part.writer = part.writer, None
            part.staged = await writer.finish()

    async def _store_all(self) -> None:
        if all(part.metadata is None for part in self._parts):
            raise InvalidArgument("the request has no application/dicom+json or "
                             "application/dicom+xml metadata part")
        bulk, duplicated = _bulk_by_location(self._parts)
        referenced: set[str] = set()
        for instance in self._instances():
            if isinstance(instance, StoreOutcome):
                self.results.append(instance)
                continue
            referenced |= bulk_references(instance)
            outcome = StoreOutcome()
            ids = identity(instance)
            outcome.sop_class_uid, outcome.sop_uid = ids.sop_class_uid, ids.sop_uid
            self.results.append(outcome)
            await self._store_one(instance, _StagedBulk(bulk, duplicated), outcome)
        for location in sorted(set(bulk) - referenced):
            self.results.append(StoreOutcome(reason=CANNOT_UNDERSTAND, detail=(
                f"the bulk data part at Content-Location {location!r} is referenced by no "
                "instance's BulkDataURI")))
        for part in self._parts:
            if part.metadata is None and part.location is None:
                self.results.append(StoreOutcome(reason=CANNOT_UNDERSTAND, detail=(
                    f"a {part.media_type} bulk data part has no Content-Location, so no "
                    "BulkDataURI can refer to it")))

    def _instances(self) -> Iterator[dict[str, Any] | StoreOutcome]:
        """Each instance of each metadata part, or an Outcome saying why a part is unreadable."""
        for part in self._parts:
            if part.metadata is None:
                continue
            try:
                yield from _parse_metadata(part.media_type, bytes(part.metadata))
            except (XmlModelError, BuildError) as exc:
                yield StoreOutcome(reason=CANNOT_UNDERSTAND, detail=str(exc))

    async def _store_one(self, instance: dict[str, Any], bulk: "_StagedBulk",
                         outcome: StoreOutcome) -> None:
        try:
            staged = await anyio.to_thread.run_sync(_build_and_stage, self._archive.blobs,
                                                    instance, bulk)
        except BuildError as exc:
            outcome.fail(exc.reason, str(exc))
            return
        except OSError as exc:
            out_of_resources(outcome, exc)
            return
        await store_staged(self._archive, self._store, staged, outcome, self._options)


def _start(headers: Mapping[str, str], metadata_type: str, first: bool) -> _Part:
    """A new part: metadata if its Content-Type says so (or, lacking one, if it is the first
    part: the request's type names it, PS3.18 10.5.1.2.2), bulk data otherwise."""
    default = metadata_type if first and "content-location" not in headers else OCTET_STREAM
    try:
        media = parse_media_type(headers.get("content-type", default))
    except ValueError:
        media = parse_media_type(OCTET_STREAM)
    location = headers.get("content-location")
    part = _Part(media.name, media.params.get("transfer-syntax"),
                 location.strip() if location else None)
    if media.name in METADATA_TYPES:
        part.metadata = bytearray()
    return part


def _parse_metadata(media_type: str, data: bytes) -> list[dict[str, Any]]:
    """The instances of one metadata part (PS3.18 F.2 JSON array, or PS3.19 XML)."""
    if media_type == DICOM_XML:
        return [from_native_xml(data)]
    try:
        instances = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BuildError(f"the JSON metadata is not valid JSON: {exc}") from exc
    if isinstance(instances, dict):
        instances = [instances]
    if not isinstance(instances, list) or not all(isinstance(i, dict) for i in instances):
        raise BuildError("the JSON metadata must be an array of DICOM JSON objects")
    if any(sequence_depth(i) > MAX_SEQUENCE_DEPTH for i in instances):
        raise BuildError(f"sequences are nested more than {MAX_SEQUENCE_DEPTH} deep")
    return instances


def _bulk_by_location(parts: list[_Part]) -> tuple[dict[str, _Part], set[str]]:
    """Bulk parts by Content-Location, and the locations more than one part claims."""
    found: dict[str, _Part] = {}
    duplicated: set[str] = set()
    for part in parts:
        if part.metadata is not None or part.location is None:
            continue
        if part.location in found:
            duplicated.add(part.location)
        found[part.location] = part
    return found, duplicated


class _StagedBulk(Mapping[str, BulkPart]):
    """Bulk parts by location, read from their staged blobs only when an instance takes one."""

    def __init__(self, parts: dict[str, _Part], duplicated: set[str]) -> None:
        self._parts = parts
        self._duplicated = duplicated

    def __getitem__(self, location: str) -> BulkPart:
        if location in self._duplicated:
            raise BuildError(f"several bulk data parts have Content-Location {location!r}",
                             DATA_SET_DOES_NOT_MATCH)
        part = self._parts[location]
        data = b""
        if part.staged is not None:
            with part.staged.open() as file:
                data = file.read()
        return BulkPart(part.media_type, part.transfer_syntax, data)

    def __iter__(self) -> Iterator[str]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)


def _build_and_stage(blobs: BlobStore, instance: dict[str, Any],
                     bulk: _StagedBulk) -> StagedBlob:
    """Build the Part 10 bytes and write them to a staged blob, to be stored exactly as a
    received Part 10 instance is."""
    return stage_all(blobs, [build_part10(instance, bulk)])
