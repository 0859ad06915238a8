"""Retrieve frames (WADO-RS, PS3.18 10.4.1.1.2): …/instances/{i}/frames/{list}.

Each frame is read with one seek per fragment at the spans recorded at ingest, and sent as its
own part in request order: native frames as application/octet-stream, encapsulated frames as
their compressed bitstream under the media type of the stored transfer syntax.
"""


from starlette.requests import Request
from starlette.responses import Response

from pacs.archive import locate
from pacs.dicom_codecs.transfer_syntaxes import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    OCTET_STREAM,
    frame_media_type,
    same_frame_bytes,
)
from pacs.errors import BadRequest
from pacs.http.media_types import AS_STORED, Offer, Representation, negotiate
from pacs.http.multipart_writer import Part
from pacs.http.responses import blob_spans, multipart_response


def parse_frame_list(text: str, limit: int) -> list[int]:
    """`1,3,2` → [1, 3, 2] (1-based, in request order); 400 if malformed."""
    numbers = []
    for piece in text.split(","):
        piece = piece.strip()
        if not piece.isdigit() or int(piece) < 1:
            raise BadRequest(f"invalid frame number {piece!r} in frame list {text!r}: frame "
                             "numbers are positive integers, separated by commas")
        numbers.append(int(piece))
    if len(numbers) > limit:
        raise BadRequest(f"{len(numbers)} frames requested; at most {limit} per request")
    return numbers


async def retrieve_frames(request: Request) -> Response:
    """GET frames of one instance as multipart/related, one part per frame."""
    archive, found = await locate(request)
    numbers = parse_frame_list(request.path_params["frames"],
                               archive.settings.max_frames_per_request)
    item = found[0]
    instance = item.sop_uid
    frames = item.frames()
    if not frames:
        raise BadRequest(f"instance {instance} has no pixel data frames that can be retrieved")
    missing = [n for n in numbers if n > len(frames)]
    if missing:
        raise BadRequest(f"frame {missing[0]} does not exist: instance {instance} has "
                         f"{len(frames)} frame(s)")
    stored = item.transfer_syntax_uid
    media_type = frame_media_type(stored)
    offers = tuple(dict.fromkeys((Offer(True, OCTET_STREAM), Offer(True, media_type))))
    available = [o.describe(ts) for o in offers for ts in (AS_STORED, stored)]
    negotiate(request.headers.get("accept"), offers, available,
              lambda rep: _producible(rep, stored, media_type))
    label = EXPLICIT_VR_LITTLE_ENDIAN if same_frame_bytes(stored, EXPLICIT_VR_LITTLE_ENDIAN) \
        else stored
    part_type = f"{media_type}; transfer-syntax={label}"
    chunk = archive.settings.read_chunk_bytes
    parts = [Part({"Content-Type": part_type},
                  blob_spans(archive.blobs, item.blob_name, frames[number - 1], chunk),
                  sum(fragment.length for fragment in frames[number - 1]))
             for number in numbers]
    return multipart_response(parts, media_type, {"transfer-syntax": label})


def _producible(rep: Representation, stored: str, media_type: str) -> bool:
    """Frames go out as stored: `*`, or the stored syntax under its own media type."""
    if rep.transfer_syntax == AS_STORED:
        return True
    return same_frame_bytes(stored, rep.transfer_syntax) and rep.media_type == media_type
