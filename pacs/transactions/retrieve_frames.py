"""Retrieve frames (WADO-RS, PS3.18 10.4.1.1.2): …/instances/{i}/frames/{list}.

One part per requested frame, in request order. A frame asked for as stored is read with one
seek per fragment at the spans recorded at ingest; a frame asked for in another transfer
syntax (or as PNG) is decoded and re-encoded in the pixel workers, only the frames asked for.
"""

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response

from pacs.ascii_numbers import ascii_int
from pacs.dicom.transfer_syntaxes import (
    DEFAULT_TRANSFER_SYNTAX,
    EXPLICIT_VR_LITTLE_ENDIAN,
    FRAME_SYNTAXES,
    OCTET_STREAM,
    PNG,
    frame_media_type,
    is_big_endian,
    same_frame_bytes,
)
from pacs.http.addressing import addressed
from pacs.http.media_types import AS_STORED, Offer, Representation, negotiate, preferred
from pacs.http.multipart_writer import Part
from pacs.http.responses import buffered_multipart_response, multipart_response
from pacs.http.transaction import Transaction
from pacs.pixels.description import PixelDescription
from pacs.pixels.engine import PixelEngine
from pacs.pixels.transcode import transcode_refusal
from pacs.service.archive import Archive
from pacs.service.errors import InvalidArgument
from pacs.service.retrieve import (
    check_frames,
    check_stored,
    decoded_refusal,
    locate,
    read_small,
    stream,
)
from storage.rows import InstanceLocation, Span

OFFERS = tuple(Offer(True, media_type) for media_type in (*FRAME_SYNTAXES, PNG))


def parse_frame_list(text: str, limit: int) -> list[int]:
    """`1,3,2` → [1, 3, 2] (1-based, in request order); 400 if malformed."""
    numbers = []
    for piece in text.split(","):
        number = ascii_int(piece.strip())
        if number is None or number < 1:
            raise InvalidArgument(f"invalid frame number {piece.strip()[:20]!r} in frame list "
                                  f"{text[:80]!r}: frame numbers are positive integers in "
                                  "ASCII digits, separated by commas")
        numbers.append(number)
    if len(numbers) > limit:
        raise InvalidArgument(f"{len(numbers)} frames requested; at most {limit} per request")
    return numbers


def target_syntax(rep: Representation, stored: str) -> str:
    """What a frame goes out in: AS_STORED, a transfer syntax UID, or PNG. Big endian frames
    go out little endian even as stored: PS3.18 8.7.3 keeps big endian off the web."""
    if rep.media_type == PNG:
        return PNG
    if rep.transfer_syntax != AS_STORED:
        return rep.transfer_syntax
    if rep.media_type == OCTET_STREAM or stored in FRAME_SYNTAXES[rep.media_type]:
        return EXPLICIT_VR_LITTLE_ENDIAN if is_big_endian(stored) else AS_STORED
    return DEFAULT_TRANSFER_SYNTAX[rep.media_type]


def _as_stored_target(rep: Representation, stored: str) -> bool:
    target = target_syntax(rep, stored)
    return target == AS_STORED or (target != PNG and same_frame_bytes(stored, target))


def frame_refusal(rep: Representation, stored: str, desc: PixelDescription | None,
                  limit: int) -> str | None:
    """Why frames of this instance cannot go out as `rep`, or None; a frame is decoded only
    if it takes at most `limit` bytes decoded."""
    target = target_syntax(rep, stored)
    if target == AS_STORED:
        return None
    if target != PNG and target not in FRAME_SYNTAXES[rep.media_type]:
        return f"{rep.media_type} cannot carry transfer syntax {target}"
    return transcode_refusal(stored, target, desc) or (
        None if desc is None or same_frame_bytes(stored, target)
        else decoded_refusal(desc, 1, limit))


async def retrieve_frames(request: Request) -> Response:
    """GET frames of one instance as multipart/related, one part per frame."""
    archive, store, resource = await addressed(request)
    found = await locate(archive, store, resource)
    numbers = parse_frame_list(request.path_params["frames"],
                               archive.settings.max_frames_per_request)
    item = found[0]
    stored = item.transfer_syntax_uid
    spans = item.frames
    accept = request.headers.get("accept")
    liked = preferred(accept, OFFERS)
    # frames wanted as stored need no pixel description: they are read at recorded spans
    as_stored = liked is not None and spans and _as_stored_target(liked, stored)
    desc = None if as_stored else await archive.pixels.description(item)
    check_frames(item, desc, numbers)
    available = [OFFERS[0].describe(AS_STORED), OFFERS[0].describe(EXPLICIT_VR_LITTLE_ENDIAN)]
    if frame_media_type(stored) != OCTET_STREAM:
        available.append(Offer(True, frame_media_type(stored)).describe(stored))
    refused = store.profile.unrequestable_syntaxes
    choice = negotiate(accept, OFFERS, available,
                       lambda rep: f"transfer syntax {rep.transfer_syntax} is not used on the "
                       "web (PS3.18 8.7.3)" if rep.transfer_syntax in refused
                       else frame_refusal(rep, stored, desc,
                                          archive.settings.max_transcode_bytes))
    target = target_syntax(choice, stored)
    if target == AS_STORED and not spans:
        target = EXPLICIT_VR_LITTLE_ENDIAN  # a deflated dataset: frames exist only inflated
    if target == AS_STORED or same_frame_bytes(stored, target):
        return await _as_stored(archive, item, spans, numbers)
    end = max((f.offset + f.length for n in numbers if n <= len(spans) for f in spans[n - 1]),
              default=item.blob_size)
    await check_stored(archive, [(item, end)])
    return await _transcoded_frames(archive.pixels, item, numbers, choice.media_type, target)


async def _as_stored(archive: Archive, item: InstanceLocation, spans: list[list[Span]],
                     numbers: list[int]) -> Response:
    """The stored bytes of each frame, under the stored syntax's frame media type: read at
    once when small (one worker-thread hop, checked before the headers), else checked and
    streamed."""
    stored = item.transfer_syntax_uid
    media_type = frame_media_type(stored)
    label = EXPLICIT_VR_LITTLE_ENDIAN if same_frame_bytes(stored, EXPLICIT_VR_LITTLE_ENDIAN) \
        else stored
    part_type = f"{media_type}; transfer-syntax={label}"
    wanted = [spans[number - 1] for number in numbers]
    read = await read_small(archive, item, wanted)
    if read is not None:
        return buffered_multipart_response([({"Content-Type": part_type}, data)
                                            for data in read], media_type,
                                           {"transfer-syntax": label})
    end = max(f.offset + f.length for fragments in wanted for f in fragments)
    await check_stored(archive, [(item, end)])
    parts = [Part({"Content-Type": part_type}, stream(archive, item, fragments),
                  sum(f.length for f in fragments)) for fragments in wanted]
    return multipart_response(parts, media_type, {"transfer-syntax": label})


async def _transcoded_frames(pixels: PixelEngine, item: InstanceLocation, numbers: list[int],
                             media_type: str, target: str) -> Response:
    """Each frame decoded and encoded in `target` (or as PNG), one at a time as it is sent."""
    part_type = PNG if target == PNG else f"{media_type}; transfer-syntax={target}"
    first = await pixels.frame(item, numbers[0], target)  # errors before the headers
    parts = [Part({"Content-Type": part_type}, _transcoded(pixels, item, n, target),
                  len(first.data) if i == 0 else None)
             for i, n in enumerate(numbers)]
    params = {} if target == PNG else {"transfer-syntax": target}
    return multipart_response(parts, media_type, params)


async def _transcoded(pixels: PixelEngine, item: InstanceLocation, number: int,
                      target: str) -> AsyncIterator[bytes]:
    yield (await pixels.frame(item, number, target)).data


RETRIEVE_FRAMES = Transaction("Retrieve Frames", "dicomWebRead", retrieve_frames, OFFERS)
