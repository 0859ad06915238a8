"""Retrieve (PS3.4 C.6 retrieve, PS3.18 10.4): where the instances of a study, series or
instance are, their bytes, their metadata as DICOM JSON (PS3.18 F.2) precomputed at ingest,
which transfer syntax an instance can be sent in, and which frames exist."""

import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple

import anyio
import orjson

from pacs.dicom.byte_order import WORD_SIZES, swapped
from pacs.dicom.transfer_syntaxes import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    NATIVE_LITTLE_ENDIAN,
    is_big_endian,
    syntax_of,
)
from pacs.pixels.description import PixelDescription
from pacs.pixels.transcode import transcode_refusal
from pacs.service.archive import Archive
from pacs.service.errors import CannotTranscode, DataLoss, InvalidArgument, NotFound
from pacs.service.links import Links
from pacs.service.stores import StoreContext
from pacs.service.targets import Target
from storage.rows import InstanceLocation, Span
from storage.spans import read_spans

log = logging.getLogger("pacs")


async def locate(archive: Archive, store: StoreContext, target: Target
                 ) -> list[InstanceLocation]:
    """The instances under `target`, in series and instance number order; NotFound if none."""
    found = await archive.index.locate(store.id, target.study, target.series, target.instance)
    if not found:
        raise NotFound(f"{target.describe()} not found")
    return found


class Metadata(NamedTuple):
    """A DICOM JSON array, and a version that changes whenever it does."""

    body: bytes
    version: str


async def metadata(archive: Archive, store: StoreContext, target: Target, links: Links
                   ) -> Metadata:
    """The DICOM JSON array of the instances under `target`, BulkDataURIs under `links`.
    Its version digests `links` and the instances' blob names: a stored instance changes only
    by being replaced by a new blob, and blob names are never reused."""
    rows = await archive.index.metadata(store.id, target.study, target.series, target.instance)
    if not rows:
        raise NotFound(f"{target.describe()} not found")
    version = hashlib.blake2b(links.root.encode(), digest_size=16)
    for row in rows:
        version.update(row.blob_name.encode())
    return Metadata(b"[" + b",".join(links.with_bulk_data_uris(row.metadata, row.study_uid,
                                                               row.series_uid, row.sop_uid)
                                     for row in rows) + b"]", version.hexdigest())


async def check_stored(archive: Archive, wanted: Sequence[tuple[InstanceLocation, int]]
                       ) -> None:
    """DataLoss, logged once, unless each instance's blob holds at least the given number of
    bytes: checked before an answer's headers go out, so that no answer promises bytes it
    cannot send."""
    def short() -> list[str]:
        missing = []
        for item, needed in wanted:
            try:
                held = archive.blobs.size(item.blob_name)
            except FileNotFoundError:
                held = -1
            if held < needed:
                missing.append(_shortfall(item, held, needed))
        return missing
    _lost(await anyio.to_thread.run_sync(short))


async def read_small(archive: Archive, item: InstanceLocation,
                     pieces: Sequence[Sequence[Span]]) -> list[bytes] | None:
    """The stored bytes of each piece (a frame's fragments), all read in one worker-thread
    hop, when together they are at most a read's worth (a viewer's frames); None when
    larger, to be checked and streamed instead. DataLoss, logged once, if the blob falls
    short."""
    if sum(span.length for spans in pieces for span in spans) > archive.read_bytes:
        return None

    def read() -> tuple[list[bytes], list[str]]:
        spans = [span for piece in pieces for span in piece]
        parts = iter(read_spans(archive.blobs, item.blob_name, spans))  # few reads
        out: list[bytes] = []
        for piece in pieces:
            data = b"".join(next(parts) for _ in piece)
            wanted = sum(s.length for s in piece)
            if len(data) < wanted:
                return [], [_shortfall(item, len(data), wanted)]
            out.append(data)
        return out, []
    try:
        found, missing = await anyio.to_thread.run_sync(read)
    except FileNotFoundError:
        found, missing = [], [_shortfall(item, -1, item.blob_size)]
    _lost(missing)
    return found


def _shortfall(item: InstanceLocation, held: int, needed: int) -> str:
    """What is missing: `held` of the `needed` bytes (-1: the blob is gone)."""
    return (f"instance {item.sop_uid}: blob {item.blob_name} holds {max(held, 0)} of the "
            f"{needed} bytes asked for" + (" (it is gone)" if held < 0 else ""))


def _lost(missing: list[str]) -> None:
    if missing:
        log.error("stored data is missing: %s", "; ".join(missing))
        raise DataLoss(f"{len(missing)} instance(s) asked for are damaged in storage; the "
                       f"server log has the details. First: {missing[0]}")


async def stream(archive: Archive, item: InstanceLocation, spans: Sequence[Span]
                 ) -> AsyncIterator[bytes]:
    """The stored bytes of `spans` of an instance's blob, read in worker threads."""
    chunk = archive.read_bytes
    for span in spans:
        offset, end = span.offset, span.offset + span.length
        while offset < end:
            data = await anyio.to_thread.run_sync(archive.blobs.read, item.blob_name, offset,
                                                  min(chunk, end - offset))
            if not data:
                raise OSError(f"blob {item.blob_name} ends before byte {end}")
            offset += len(data)
            yield data


async def instance_syntax(archive: Archive, item: InstanceLocation, asked: str) -> str:
    """The transfer syntax an instance asked for in `asked` is sent in; CannotTranscode with
    the reason if it cannot be produced. Instances without pixel data are re-encoded only to
    a native syntax (else Explicit VR Little Endian), as pixel encodings do not apply to
    them. A transcoded instance is held in memory, so its size is limited (as Google limits
    it, to 1 GB by default)."""
    stored = item.transfer_syntax_uid
    if asked == stored:
        return stored
    desc = await archive.pixels.description(item)
    if desc is None:
        return asked if asked in NATIVE_LITTLE_ENDIAN else EXPLICIT_VR_LITTLE_ENDIAN
    limit = archive.settings.max_transcode_bytes
    reason = transcode_refusal(stored, asked, desc) or (
        f"it has {item.blob_size} bytes; instances of at most {limit} are transcoded"
        if item.blob_size > limit else None) or decoded_refusal(desc, desc.frames, limit)
    if reason:
        raise CannotTranscode(f"instance {item.sop_uid} cannot be sent in transfer syntax "
                              f"{asked}: {reason}")
    return asked


def decoded_refusal(desc: PixelDescription, frames: int, limit: int) -> str | None:
    """Why `frames` frames cannot be decoded to transcode them (their decoded pixels would
    pass `limit` bytes: a small compressed file may claim a huge image), or None."""
    size = desc.frame_bytes * frames
    if size <= limit:
        return None
    return (f"decoded, {frames} frame{'s' if frames > 1 else ''} would take {size} bytes; "
            f"at most {limit} are decoded to transcode")


def check_frames(item: InstanceLocation, desc: PixelDescription | None,
                 numbers: Sequence[int]) -> None:
    """InvalidArgument unless every frame number exists in the instance: counted by its
    frame spans recorded at ingest (none: no pixel data in the file), or by its header for
    a deflated dataset, where no spans can be recorded."""
    syntax = syntax_of(item.transfer_syntax_uid)
    counted = syntax is not None and syntax.deflated and not item.frames
    count = (desc.frames if desc is not None else 0) if counted else len(item.frames)
    if count == 0:
        raise InvalidArgument(f"instance {item.sop_uid} has no pixel data frames that can be "
                              "retrieved")
    missing = [n for n in numbers if n > count]
    if missing:
        raise InvalidArgument(f"frame {missing[0]} does not exist: instance {item.sop_uid} "
                              f"has {count} frame(s)")


async def bulk_stream(archive: Archive, store: StoreContext, item: InstanceLocation,
                      path: str, value: Span, part: Span) -> AsyncIterator[bytes]:
    """The bytes `part` (inside `value`, the whole value) of the bulk data element at `path`,
    little endian: a big endian instance's value has each word swapped by the size its VR
    gives (PS3.18 8.7.3 keeps big endian off the web; PS3.5 7.3)."""
    if not is_big_endian(item.transfer_syntax_uid):
        return stream(archive, item, [part])
    word = WORD_SIZES.get(await _element_vr(archive, store, item, path), 1)
    lead = (part.offset - value.offset) % word
    length = -(-(lead + part.length) // word) * word
    return _little_endian(stream(archive, item, [Span(part.offset - lead, length)]), word,
                          lead, part.length)


async def _element_vr(archive: Archive, store: StoreContext, item: InstanceLocation,
                      path: str) -> str:
    """The VR the stored metadata gives the element at attribute path `path`."""
    [row] = await archive.index.metadata(store.id, item.study_uid, item.series_uid,
                                         item.sop_uid)
    node: Any = orjson.loads(row.metadata)
    keys = path.split("/")
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]["Value"]
    return str(node[keys[-1]]["vr"])


async def _little_endian(chunks: AsyncIterator[bytes], word: int, lead: int,
                         length: int) -> AsyncIterator[bytes]:
    """Word-aligned big endian `chunks` swapped, less `lead` bytes first and trimmed to
    `length`."""
    carry = b""
    async for chunk in chunks:
        data = carry + chunk
        whole = len(data) - len(data) % word
        data, carry = swapped(data[:whole], word), data[whole:]
        data = data[lead:lead + length]
        lead, length = max(lead - whole, 0), length - len(data)
        if data:
            yield data
