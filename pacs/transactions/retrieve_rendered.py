"""Rendered and thumbnail resources (PS3.18 10.4.1.1.3, 8.3.5; Sup 203 thumbnails) of a
study, series, instance or frame list: consumer images with the Modality and VOI LUTs
applied, as JPEG (default), PNG or GIF (animated for several frames).

A single-part answer for a study or series is its representative image: the first frame of
the middle instance that has pixels. A multipart answer carries one picture per instance
(study, series), or per frame (instance, frame list). An animated GIF holds at most
`max_animated_frames` frames of `max_rendered_pixels` pixels together: an instance's first
ones, or a frame list no longer than that.
"""

from collections.abc import AsyncIterator, Sequence

from starlette.requests import Request
from starlette.responses import Response

from pacs.http.addressing import addressed, links_of
from pacs.http.media_types import Offer, negotiate
from pacs.http.multipart_writer import Part
from pacs.http.responses import multipart_response
from pacs.http.transaction import Transaction
from pacs.pixels.description import PixelDescription, PixelError
from pacs.pixels.engine import PixelEngine
from pacs.pixels.render import (
    RENDERED_MEDIA_TYPES,
    RenderParams,
    Viewport,
    parse_render_params,
    rendered_size,
)
from pacs.service.archive import Archive
from pacs.service.errors import InvalidArgument, NotFound
from pacs.service.retrieve import check_frames, locate
from pacs.transactions.retrieve_frames import parse_frame_list
from storage.rows import InstanceLocation

GIF = "image/gif"
_OFFERS = (*(Offer(False, t) for t in RENDERED_MEDIA_TYPES),
           *(Offer(True, t) for t in RENDERED_MEDIA_TYPES))
_AVAILABLE = [o.describe() for o in _OFFERS]

Job = tuple[InstanceLocation, list[int]]  # an instance and the frames of one picture


async def retrieve_rendered(request: Request) -> Response:
    """GET …/rendered: the resource rendered as asked by the query parameters."""
    return await _respond(request, thumbnail=False)


async def retrieve_thumbnail(request: Request) -> Response:
    """GET …/thumbnail: a small rendering (128 pixels unless a viewport is given)."""
    return await _respond(request, thumbnail=True)


async def _respond(request: Request, thumbnail: bool) -> Response:
    archive, store, target = await addressed(request)
    resource = "thumbnail" if thumbnail else "rendered"
    level = "frames" if "frames" in request.path_params else target.level
    levels = store.profile.thumbnail_levels if thumbnail else store.profile.rendered_levels
    if level not in levels:
        raise NotFound(f"{store.name} has no {resource} resource for a {level}")
    found = await locate(archive, store, target)
    accept = request.query_params.get("accept") or request.headers.get("accept")
    choice = negotiate(accept, _OFFERS, _AVAILABLE)
    try:
        allowed = store.profile.rendered_parameters
        query = {k: v for k, v in request.query_params.items() if allowed is None or k in allowed}
        params = parse_render_params(query, choice.media_type, thumbnail)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from exc
    jobs = await _jobs(request, archive, found, choice.offer.multipart, params)
    first = await archive.pixels.rendered(*jobs[0], params)  # errors before the headers
    if not choice.offer.multipart:
        return Response(first, media_type=choice.media_type)
    # a study's or series' pictures name their instances, so one that cannot be rendered is
    # left out rather than the body cut short after its 200 (an instance's frames are not)
    named = "instance" not in request.path_params
    links = links_of(request)

    def headers(item: InstanceLocation) -> dict[str, str]:
        url = links.instance(item.study_uid, item.series_uid, item.sop_uid)
        return {"Content-Type": choice.media_type,
                **({"Content-Location": f"{url}/{resource}"} if named else {})}
    parts = [Part(headers(item), _picture(archive.pixels, (item, numbers), params),
                  len(first) if i == 0 else None, optional=named)
             for i, (item, numbers) in enumerate(jobs)]
    return multipart_response(parts, choice.media_type)


async def _jobs(request: Request, archive: Archive, found: list[InstanceLocation],
                multipart: bool, params: RenderParams) -> list[Job]:
    """The pictures to render: which instance, and which of its frames in each."""
    settings = archive.settings
    if "instance" not in request.path_params:
        return await _level_jobs(archive.pixels, found, multipart)
    item = found[0]
    desc = await archive.pixels.description(item)
    if "frames" in request.path_params:
        numbers = parse_frame_list(request.path_params["frames"], settings.max_frames_per_request)
    else:
        numbers = list(range(1, (desc.frames if desc else 1) + 1))
    check_frames(item, desc, numbers)
    if multipart:
        return [(item, [n]) for n in numbers]
    if params.media_type != GIF:
        return [(item, numbers[:1])]
    if len(numbers) > settings.max_animated_frames and "frames" in request.path_params:
        raise InvalidArgument(f"{len(numbers)} frames asked for one animation; at most "
                         f"{settings.max_animated_frames}")
    most = settings.max_animated_frames
    if desc is not None and "frames" not in request.path_params:
        most = min(most, _frames_that_fit(settings.max_rendered_pixels, desc, params.viewport))
    return [(item, numbers[:most])]


def _frames_that_fit(max_pixels: int, desc: PixelDescription, viewport: Viewport | None) -> int:
    """How many frames of `desc` one picture of at most `max_pixels` pixels holds (one at
    least: a frame too large is refused when rendered)."""
    width, height = rendered_size(desc, viewport)
    return max(1, max_pixels // max(width * height, 1))


async def _level_jobs(pixels: PixelEngine, found: Sequence[InstanceLocation],
                      multipart: bool) -> list[Job]:
    """Study or series: each instance with pixels, or the one nearest the middle (an
    instance whose header cannot describe its pixels is passed over)."""
    if multipart:
        jobs = [(item, [1]) for item in found if await _has_pixels(pixels, item)]
    else:
        middle = len(found) // 2
        by_distance = sorted(range(len(found)), key=lambda i: (abs(i - middle), i))
        jobs = []
        for i in by_distance:
            if await _has_pixels(pixels, found[i]):
                jobs = [(found[i], [1])]
                break
    if not jobs:
        raise InvalidArgument("nothing here has pixel data to render")
    return jobs


async def _has_pixels(pixels: PixelEngine, item: InstanceLocation) -> bool:
    try:
        return await pixels.description(item) is not None
    except PixelError:
        return False


async def _picture(pixels: PixelEngine, job: Job, params: RenderParams) -> AsyncIterator[bytes]:
    yield await pixels.rendered(*job, params)


RETRIEVE_RENDERED = Transaction("Retrieve Rendered", "dicomWebRead", retrieve_rendered, _OFFERS)
RETRIEVE_THUMBNAIL = Transaction("Retrieve Thumbnail", "dicomWebRead", retrieve_thumbnail, _OFFERS)
