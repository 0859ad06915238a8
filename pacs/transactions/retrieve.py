"""Retrieve transaction (WADO-RS, PS3.18 10.4): studies, series and instances as stored,
their metadata, and bulk data.

Instances stream from their blobs unchanged, or transcoded one at a time in the pixel
workers when another transfer syntax is asked for (PS3.18 8.7.3.5); metadata is the JSON
precomputed at ingest with BulkDataURIs made absolute for the requester; bulk data is one
seek to the recorded span.
"""

from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from pacs.ascii_numbers import ascii_int
from pacs.dicom.pixel_data import PIXEL_BY_KEY
from pacs.dicom.transfer_syntaxes import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    INSTANCE_SYNTAXES,
    OCTET_STREAM,
    is_big_endian,
    same_frame_bytes,
)
from pacs.http.addressing import addressed, links_of
from pacs.http.content_coding import encoded_response, not_modified, validators, weak_etag
from pacs.http.errors import RangeNotSatisfiable
from pacs.http.media_types import AS_STORED, Offer, Representation, negotiate
from pacs.http.multipart_writer import Part
from pacs.http.responses import DICOM_XML, multipart_response, native_xml_response
from pacs.http.transaction import Transaction
from pacs.pixels.engine import Lookahead
from pacs.service.archive import Archive
from pacs.service.errors import NotFound
from pacs.service.links import Links
from pacs.service.retrieve import (
    bulk_stream,
    check_stored,
    instance_syntax,
    locate,
    metadata,
    stream,
)
from storage.rows import InstanceLocation, Span

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
_STUDY_OFFERS = (Offer(True, DICOM),)
_INSTANCE_OFFERS = (Offer(True, DICOM), Offer(False, DICOM))
_METADATA_OFFERS = (Offer(False, DICOM_JSON), Offer(False, "application/json"),
                    Offer(True, DICOM_XML))
_BULK_OFFERS = (Offer(True, OCTET_STREAM), Offer(False, OCTET_STREAM))


async def retrieve(request: Request) -> Response:
    """GET study, series or instance: multipart/related application/dicom (instance: also
    single-part application/dicom), as stored or transcoded to the asked transfer syntax."""
    archive, store, target = await addressed(request)
    found = await locate(archive, store, target)
    offers = _INSTANCE_OFFERS if target.instance else _STUDY_OFFERS
    refused = store.profile.unrequestable_syntaxes
    available = [o.describe(ts) for o in offers for ts in (AS_STORED, *INSTANCE_SYNTAXES)
                 if ts not in refused]
    choice = negotiate(request.headers.get("accept"), offers, available,
                       lambda rep: _syntax_refusal(rep, refused))
    targets = [await instance_syntax(archive, item, item.transfer_syntax_uid
                                     if choice.transfer_syntax == AS_STORED
                                     else choice.transfer_syntax) for item in found]
    await check_stored(archive, [(item, item.blob_size) for item in found])
    if not choice.offer.multipart:
        return await _single(archive, found[0], targets[0])
    parts = await _parts(archive, links_of(request), found, targets)
    uniform = choice.transfer_syntax != AS_STORED and len(set(targets)) == 1
    params = {"transfer-syntax": targets[0]} if uniform else {}
    return multipart_response(parts, DICOM, params)


async def _parts(archive: Archive, links: Links, found: list[InstanceLocation],
                 targets: list[str]) -> list[Part]:
    """One part per instance: its blob as stored, or its transcode, started ahead. The
    first transcode is finished before any header goes out, so that a single instance that
    cannot be transcoded gets an error status, never a 200 cut short; a later one that
    cannot is left out (each part names its instance in Content-Location)."""
    transcodes = [(item, target) for item, target in zip(found, targets, strict=True)
                  if target != item.transfer_syntax_uid]
    ahead = archive.pixels.ahead(transcodes)
    first = await ahead.take(0) if transcodes else b""
    parts, transcoded = [], 0
    for item, target in zip(found, targets, strict=True):
        headers = {"Content-Type": f"{DICOM}; transfer-syntax={target}",
                   "Content-Location": links.instance(item.study_uid, item.series_uid,
                                                      item.sop_uid)}
        if target == item.transfer_syntax_uid:
            parts.append(Part(headers, stream(archive, item, [Span(0, item.blob_size)]),
                              item.blob_size))
        elif transcoded == 0:
            parts.append(Part(headers, _ready(first), len(first)))
            transcoded = 1
        else:
            parts.append(Part(headers, _transcoded(ahead, transcoded), optional=True))
            transcoded += 1
    return parts


def _syntax_refusal(rep: Representation, refused: frozenset[str]) -> str | None:
    if rep.transfer_syntax in refused:
        return f"transfer syntax {rep.transfer_syntax} is not used on the web (PS3.18 8.7.3)"
    if rep.transfer_syntax == AS_STORED or rep.transfer_syntax in INSTANCE_SYNTAXES:
        return None
    return f"instances cannot be sent in transfer syntax {rep.transfer_syntax}"


async def _single(archive: Archive, item: InstanceLocation, target: str) -> Response:
    media_type = f"{DICOM}; transfer-syntax={target}"
    if target == item.transfer_syntax_uid:
        return StreamingResponse(stream(archive, item, [Span(0, item.blob_size)]),
                                 media_type=media_type,
                                 headers={"Content-Length": str(item.blob_size)})
    return Response(await archive.pixels.instance(item, target), media_type=media_type)


async def _transcoded(ahead: Lookahead, index: int) -> AsyncIterator[bytes]:
    yield await ahead.take(index)


async def _ready(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def retrieve_metadata(request: Request) -> Response:
    """GET …/metadata of a study, series or instance as a DICOM JSON array, or as multipart
    Native DICOM Model XML, one instance per part (PS3.18 10.4.1.2, 8.7.3.1.2)."""
    choice = negotiate(request.headers.get("accept"), _METADATA_OFFERS,
                       [o.describe() for o in _METADATA_OFFERS])
    archive, store, target = await addressed(request)
    body, version = await metadata(archive, store, target, links_of(request))
    etag = weak_etag(version, "xml" if choice.offer.multipart else "json")
    if not choice.offer.multipart:
        return await encoded_response(request, body, choice.media_type, etag)
    response = not_modified(request, etag) or \
        native_xml_response(orjson.loads(body), store.profile.xml_namespace)
    response.headers.update(validators(etag))
    return response


async def retrieve_bulkdata(request: Request) -> Response:
    """GET …/instances/{i}/bulkdata/{path}: the stored bytes of one bulk data element,
    multipart (default) or single-part octet-stream, honouring a byte Range (PS3.18 10.4)."""
    archive, store, target = await addressed(request)
    item = (await locate(archive, store, target))[0]
    path = "/".join(p.upper() if len(p) == 8 else p for p in request.path_params["path"]
                    .strip("/").split("/"))
    span = item.bulk.get(path)
    if span is None:
        raise NotFound(f"instance {item.sop_uid} has no bulk data at {path}")
    # big endian values go out little endian (PS3.18 8.7.3)
    stored = item.transfer_syntax_uid
    sent = EXPLICIT_VR_LITTLE_ENDIAN if is_big_endian(stored) else stored
    choice = negotiate(
        request.headers.get("accept"), _BULK_OFFERS,
        [o.describe(ts) for o in _BULK_OFFERS for ts in (AS_STORED, sent)],
        lambda rep: None if _bulk_producible(rep, sent, is_pixel=path in PIXEL_BY_KEY)
        and rep.transfer_syntax not in store.profile.unrequestable_syntaxes
        else "bulk data is sent as stored, big endian values little endian")
    value = span
    span, content_range = _byte_range(request.headers.get("range"), value)
    await check_stored(archive, [(item, span.offset + span.length)])
    status = 206 if content_range else 200
    body = await bulk_stream(archive, store, item, path, value, span)
    part_type = f"{OCTET_STREAM}; transfer-syntax={sent}"
    headers = {"Content-Range": content_range} if content_range else {}
    if not choice.offer.multipart:
        return StreamingResponse(body, status_code=status, media_type=part_type,
                                 headers={**headers, "Content-Length": str(span.length)})
    location = links_of(request).bulk_data(item.study_uid, item.series_uid, item.sop_uid) + path
    part_headers = {"Content-Type": part_type, "Content-Location": location, **headers}
    return multipart_response([Part(part_headers, body, span.length)], OCTET_STREAM,
                              status=status)


def _bulk_producible(rep: Representation, stored: str, is_pixel: bool) -> bool:
    """As sent always; a named syntax only if the bytes sent are in it."""
    if rep.transfer_syntax == AS_STORED:
        return True
    if is_pixel:
        return same_frame_bytes(stored, rep.transfer_syntax)
    return same_frame_bytes(EXPLICIT_VR_LITTLE_ENDIAN, rep.transfer_syntax)


def _byte_range(header: str | None, span: Span) -> tuple[Span, str]:
    """Apply a single `bytes=a-b` Range (RFC 9110 14.2) to `span`; other forms are ignored."""
    if not header or not header.startswith("bytes=") or "," in header:
        return span, ""
    first, _, last = (piece.strip() for piece in header[6:].strip().partition("-"))
    low, high = ascii_int(first), ascii_int(last)
    if first and low is not None and (high is not None or not last):
        start, end = low, min(high, span.length - 1) if high is not None else span.length - 1
    elif not first and high is not None:
        start, end = max(span.length - high, 0), span.length - 1
    else:
        return span, ""  # a Range we cannot read is ignored (RFC 9110 14.2)
    if start > end or start >= span.length:
        raise RangeNotSatisfiable(f"range {header} is outside the {span.length} bytes of the "
                                  "bulk data")
    return Span(span.offset + start, end - start + 1), f"bytes {start}-{end}/{span.length}"


RETRIEVE_STUDY = Transaction("Retrieve Instances", "dicomWebRead", retrieve, _STUDY_OFFERS)
RETRIEVE_INSTANCE = Transaction("Retrieve Instance", "dicomWebRead", retrieve, _INSTANCE_OFFERS)
RETRIEVE_METADATA = Transaction("Retrieve Metadata", "dicomWebRead", retrieve_metadata,
                                _METADATA_OFFERS)
RETRIEVE_BULKDATA = Transaction("Retrieve Bulkdata", "dicomWebRead", retrieve_bulkdata,
                                _BULK_OFFERS)
