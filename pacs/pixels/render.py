"""Decoded frames to consumer images for WADO-RS /rendered and /thumbnail (PS3.18 8.3.5):
the greyscale pipeline of PS3.3 C.11 (Modality LUT, VOI LUT, MONOCHROME1 inversion) or the
colour conversions of PS3.3 C.7.6.3.1, then the viewport, then JPEG, PNG or GIF (Pillow)."""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels.processing import apply_color_lut, convert_color_space

from pacs.ascii_numbers import ascii_float, ascii_int
from pacs.pixels.codecs import MONOCHROME, Frame
from pacs.pixels.description import PixelDescription, PixelError

RENDERED_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif")
WINDOW_FUNCTIONS = ("linear", "linear-exact", "sigmoid")  # PS3.18 8.3.5.1.4
MAX_VIEWPORT_SIDE = 10000  # pixels, the Cloud Healthcare API's limit
GIF_FRAME_MS = 100  # display time of each frame of an animated GIF

_PIL_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF"}
_HEADER_FUNCTIONS = {"LINEAR": "linear", "LINEAR_EXACT": "linear-exact", "SIGMOID": "sigmoid"}
_WINDOW_FORM = "'center,width' or 'center,width,function' with function linear, " \
               "linear-exact or sigmoid"
_VIEWPORT_FORM = "'vw,vh' or 'vw,vh,sx,sy,sw,sh'"


@dataclass(frozen=True)
class Window:
    """A VOI window (PS3.3 C.11.2.1.2, C.11.2.1.3); `function` is one of WINDOW_FUNCTIONS."""

    center: float
    width: float
    function: str = "linear"


@dataclass(frozen=True)
class Viewport:
    """The output size and the source region sx, sy, sw, sh (PS3.18 8.3.5.1.3); a negative
    sw or sh flips the region, an infinite one reaches the image's edge."""

    width: int
    height: int
    source: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class RenderParams:
    """What a rendered request asks for (PS3.18 8.3.5.1)."""

    media_type: str = "image/jpeg"
    quality: int = 90
    window: Window | None = None
    viewport: Viewport | None = None


THUMBNAIL_VIEWPORT = Viewport(128, 128)  # Sup 203 leaves the thumbnail size to the server


# --- query parameters (PS3.18 8.3.5.1) ------------------------------------------------------

def parse_render_params(query: Mapping[str, str], media_type: str,
                        thumbnail: bool = False) -> RenderParams:
    """The rendering parameters of a query; ValueError naming any malformed one. Unknown
    parameters and `charset` (it only concerns annotation text) are ignored."""
    if media_type not in RENDERED_MEDIA_TYPES:
        raise ValueError(f"{media_type} is not a rendered media type: this server renders "
                         f"{', '.join(RENDERED_MEDIA_TYPES)}")
    annotation = query.get("annotation", "").strip()
    if annotation:
        raise ValueError(f"annotation={annotation} is not supported: this server burns in "
                         "no annotations")
    icc = query.get("iccprofile", "no").strip().lower()
    if icc != "no":
        raise ValueError(f"iccprofile={icc} is not supported: this server embeds no ICC "
                         "profile (use iccprofile=no or leave it out)")
    viewport = _viewport(query["viewport"]) if "viewport" in query else None
    if viewport is None and thumbnail:
        viewport = THUMBNAIL_VIEWPORT
    window = _window(query["window"]) if "window" in query else None
    return RenderParams(media_type, _quality(query.get("quality")), window, viewport)


def _quality(text: str | None) -> int:
    if text is None:
        return RenderParams.quality
    quality = ascii_int(text.strip())
    if quality is None or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer from 1 to 100, found {text!r}")
    return quality


def _number(text: str, parameter: str, form: str) -> float:
    value = ascii_float(text)
    if value is None:
        raise ValueError(f"{parameter} must be {form}, found the non-number {text[:40]!r}")
    return value


def _window(text: str) -> Window:
    parts = [part.strip() for part in text.split(",")]
    if len(parts) not in (2, 3):
        raise ValueError(f"window must be {_WINDOW_FORM}, found {text!r}")
    center, width = (_number(part, "window", _WINDOW_FORM) for part in parts[:2])
    function = parts[2].lower() if len(parts) == 3 else "linear"
    if function not in WINDOW_FUNCTIONS:
        raise ValueError(f"window must be {_WINDOW_FORM}, found the function {parts[2]!r}")
    least = 1.0 if function == "linear" else 0.0  # PS3.3 C.11.2.1.2.1, C.11.2.1.3
    if width <= 0 or width < least:
        limit = "at least 1" if function == "linear" else "greater than 0"
        raise ValueError(f"window width must be {limit} for the {function} function, "
                         f"found {parts[1]!r}")
    return Window(center, width, function)


def _viewport(text: str) -> Viewport:
    parts = [part.strip() for part in text.split(",")]
    if len(parts) not in (2, 6):
        raise ValueError(f"viewport must be {_VIEWPORT_FORM}, found {text!r}")
    width, height = (_side(part) for part in parts[:2])
    if len(parts) == 2:
        return Viewport(width, height)
    sx, sy = (_number(p, "viewport", _VIEWPORT_FORM) if p else 0.0 for p in parts[2:4])
    sw, sh = (_number(p, "viewport", _VIEWPORT_FORM) if p else math.inf for p in parts[4:])
    if sx < 0 or sy < 0 or sw == 0 or sh == 0:
        raise ValueError(f"viewport sx and sy must not be negative and sw and sh not zero, "
                         f"found {text!r}")
    return Viewport(width, height, (sx, sy, sw, sh))


def _side(text: str) -> int:
    side = ascii_int(text)
    if side is None or not 1 <= side <= MAX_VIEWPORT_SIDE:
        raise ValueError(f"viewport vw and vh must be integers from 1 to {MAX_VIEWPORT_SIDE}, "
                         f"found {text!r}")
    return side


# --- greyscale: PS3.3 C.11 ------------------------------------------------------------------

def _value(ds: Dataset, keyword: str) -> float | None:
    """The first value of a numeric attribute; None when absent, empty or unreadable."""
    try:
        value = ds.get(keyword)
        if isinstance(value, MultiValue | list):
            value = value[0] if value else None
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _first_item(ds: Dataset, keyword: str) -> Dataset | None:
    items = ds.get(keyword)
    return items[0] if items else None


def _module(header: Dataset, keyword: str, group: str) -> Dataset:
    """`header`, or the Shared Functional Groups item `group` that holds `keyword` when the
    header does not (enhanced multi-frame images, PS3.3 C.7.6.16)."""
    if keyword not in header:
        shared = _first_item(header, "SharedFunctionalGroupsSequence")
        item = _first_item(shared, group) if shared is not None else None
        if item is not None and keyword in item:
            return item
    return header


_PER_FRAME_GROUPS = ("PixelValueTransformationSequence", "FrameVOILUTSequence")


def frame_header(header: Dataset, number: int) -> Dataset:
    """The header as frame `number` (1-based) sees it: the rescale and window of its Per-Frame
    Functional Groups item (PS3.3 C.7.6.16.2.9, C.7.6.16.2.10) override the others. The
    header itself is left untouched (it is shared between requests)."""
    frames = header.get("PerFrameFunctionalGroupsSequence")
    if not frames or number > len(frames):
        return header
    own = [item for group in _PER_FRAME_GROUPS if (item := _first_item(frames[number - 1],
                                                                        group)) is not None]
    if not own:
        return header
    view = Dataset(dict(header.items()))  # its own element table, the same elements
    implicit, little = header.original_encoding
    view.set_original_encoding(implicit, little, header.original_character_set)
    for item in own:
        for element in item:
            view[element.tag] = element
    return view


def _lut_table(data: object, entries: int, little: bool) -> np.ndarray:
    """LUT Data as numbers: 16-bit words, or bytes when the data holds one byte per entry."""
    if isinstance(data, bytes):
        if len(data) >= 2 * entries:
            return np.frombuffer(data[:2 * entries], "<u2" if little else ">u2")
        return np.frombuffer(data[:entries], np.uint8)
    return np.asarray(data, np.float64).ravel()


def _lookup(values: np.ndarray, item: Dataset, signed: bool,
            little: bool) -> tuple[np.ndarray, int]:
    """A LUT applied (PS3.3 C.11.1.1.1, C.11.2.1.1): values before the first mapped one take
    the first entry, values past the end the last. Also returns the bits per entry."""
    try:
        entries, first, bits = (int(v) for v in item.LUTDescriptor)
        table = _lut_table(item.LUTData, entries or 2**16, little)
    except (AttributeError, TypeError, ValueError) as exc:
        raise PixelError(f"a lookup table is incomplete or invalid: {exc}") from exc
    if table.size == 0:
        raise PixelError("a lookup table has no LUT Data")
    if signed and first >= 2**15:  # the first value mapped is signed like the pixels
        first -= 2**16
    index = np.clip(values - first, 0, table.size - 1).astype(np.intp)
    return table[index].astype(np.float64), bits


def _modality(frame: Frame, header: Dataset, desc: PixelDescription,
              little: bool) -> np.ndarray:
    """Stored values to modality values (PS3.3 C.11.1): the Modality LUT, else the rescale;
    NaN float samples become -inf, below every window."""
    values = np.asarray(frame.array, np.float64)
    if desc.floating:
        values = np.nan_to_num(values, nan=-np.inf, posinf=np.inf, neginf=-np.inf)
    lut = _first_item(header, "ModalityLUTSequence")
    if lut is not None:
        return _lookup(values, lut, desc.signed, little)[0]
    source = _module(header, "RescaleSlope", "PixelValueTransformationSequence")
    slope, intercept = _value(source, "RescaleSlope"), _value(source, "RescaleIntercept")
    return values * (slope or 1.0) + (intercept or 0.0)


def _header_window(header: Dataset) -> Window | None:
    """The first Window Center and Width with their VOI LUT Function (PS3.3 C.11.2.1.2), or
    None when absent or the width is not positive."""
    source = _module(header, "WindowCenter", "FrameVOILUTSequence")
    center, width = _value(source, "WindowCenter"), _value(source, "WindowWidth")
    if center is None or width is None or width <= 0:
        return None
    function = str(source.get("VOILUTFunction") or "LINEAR").strip().upper()
    return Window(center, width, _HEADER_FUNCTIONS.get(function, "linear"))


def _windowed(values: np.ndarray, window: Window) -> np.ndarray:
    """Values through a window function to 0..255 (PS3.3 C.11.2.1.2.1 linear: c - 0.5 and
    w - 1; C.11.2.1.3.2 linear-exact; C.11.2.1.3.1 sigmoid, written with tanh so that it
    cannot overflow). A zero-width ramp is a step at its lower edge."""
    center, width = window.center, window.width
    if window.function == "sigmoid" and width > 0:
        return 127.5 * (1.0 + np.tanh(2.0 * (values - center) / width))
    if window.function == "linear":
        low, span = center - 0.5 - (width - 1) / 2, width - 1
    else:
        low, span = center - width / 2, width
    if span <= 0:
        return np.where(values > low, 255.0, 0.0)
    return np.clip((values - low) / span, 0.0, 1.0) * 255.0


def _full_range(values: np.ndarray) -> np.ndarray:
    """The frame's own finite range stretched over 0..255; a flat frame is mid-grey."""
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if high <= low:
        return np.full(values.shape, 127.5)
    return _windowed(values, Window((low + high) / 2, high - low, "linear-exact"))


def _voi(values: np.ndarray, header: Dataset, window: Window | None, signed: bool,
         little: bool) -> np.ndarray:
    """Modality values to 0..255 (PS3.3 C.11.2): the requested window, else the header's
    first window, else its first VOI LUT, else the frame's range."""
    window = window or _header_window(header)
    if window is not None:
        return _windowed(values, window)
    lut = _first_item(header, "VOILUTSequence")
    if lut is None:
        return _full_range(values)
    table, bits = _lookup(values, lut, signed, little)
    scaled: np.ndarray = table * (255.0 / max(2**bits - 1, 1))
    return scaled


LUT_MIN_PIXELS = 4096  # below this, applying the transforms directly is as quick
LUT_MAX_ENTRIES = 1 << 17


def _grey(frame: Frame, header: Dataset, desc: PixelDescription,
          window: Window | None) -> np.ndarray:
    """Greyscale display values. Every step is a function of the stored value alone, so an
    integer frame is mapped through a table built over its own value range: the transforms
    then run once per distinct value instead of once per pixel."""
    values = frame.array
    if values.dtype.kind in "iu" and values.size >= LUT_MIN_PIXELS:
        low, high = int(values.min()), int(values.max())
        if high - low < LUT_MAX_ENTRIES:
            domain = Frame(np.arange(low, high + 1), frame.photometric)
            table = _grey_values(domain, header, desc, window)
            shown: np.ndarray = table[np.subtract(values, low, dtype=np.int64)]
            return shown
    return _grey_values(frame, header, desc, window)


def _grey_values(frame: Frame, header: Dataset, desc: PixelDescription,
                 window: Window | None) -> np.ndarray:
    little = header.original_encoding[1] is not False
    shown = _voi(_modality(frame, header, desc, little), header, window, desc.signed, little)
    if frame.photometric == "MONOCHROME1":  # minimum is white (PS3.3 C.7.6.3.1.2)
        shown = 255.0 - shown
    levels: np.ndarray = np.clip(np.rint(shown), 0, 255)
    return levels.astype(np.uint8)


# --- colour: PS3.3 C.7.6.3.1.2, C.7.6.3.1.5, C.7.9 --------------------------------------------

def _to_8_bits(samples: np.ndarray, bits: int) -> np.ndarray:
    return (samples >> max(bits - 8, 0)).astype(np.uint8)


def _rgb(frame: Frame, header: Dataset, desc: PixelDescription,
         window: Window | None) -> np.ndarray:
    return _to_8_bits(frame.array, desc.bits_stored)


def _ybr(frame: Frame, header: Dataset, desc: PixelDescription,
         window: Window | None) -> np.ndarray:
    try:
        return np.asarray(convert_color_space(frame.array, "YBR_FULL", "RGB"))
    except ValueError as exc:
        raise PixelError(f"YBR_FULL samples cannot be converted to RGB: {exc}") from exc


def _palette(frame: Frame, header: Dataset, desc: PixelDescription,
             window: Window | None) -> np.ndarray:
    try:
        colours = np.asarray(apply_color_lut(frame.array, header))[..., :3]
    except (AttributeError, TypeError, ValueError) as exc:
        raise PixelError(f"the Palette Color Lookup Tables are missing or invalid: {exc}") \
            from exc
    return _to_8_bits(colours, colours.dtype.itemsize * 8)


Renderer = Callable[[Frame, Dataset, PixelDescription, Window | None], np.ndarray]
_RENDERERS: dict[str, Renderer] = {
    "MONOCHROME1": _grey, "MONOCHROME2": _grey, "RGB": _rgb,
    "YBR_FULL": _ybr, "YBR_FULL_422": _ybr, "PALETTE COLOR": _palette,
}


def display_image(frame: Frame, header: Dataset, desc: PixelDescription,
                  window: Window | None) -> np.ndarray:
    """One decoded frame as 8-bit display values: (rows, cols) greyscale or (rows, cols, 3)
    RGB (PS3.3 C.11, C.7.6.3.1). `window` overrides the header's VOI; colour ignores it."""
    renderer = _grey if desc.floating else _RENDERERS.get(frame.photometric)
    if renderer is None:
        raise PixelError(f"frames in Photometric Interpretation {frame.photometric} cannot "
                         "be rendered")
    return renderer(frame, header, desc, window)


# --- viewport and encoding (PS3.18 8.3.5.1.3, 8.3.3.2) ---------------------------------------

def _span(offset: float, size: float, limit: int) -> tuple[float, float]:
    start, end = min(offset, limit), min(offset + abs(size), limit)
    if end <= start:
        raise PixelError(f"viewport: the source region starts at {offset:g}, outside the "
                         f"image's {limit} pixels")
    return start, end


Box = tuple[float, float, float, float]  # left, top, right, bottom


def _fitted(rows: int, columns: int, viewport: Viewport
            ) -> tuple[tuple[int, int], Box, float]:
    """The output (width, height), the source box and the scale of a rows x columns image."""
    sx, sy, sw, sh = viewport.source or (0.0, 0.0, float(columns), float(rows))
    (left, right), (top, bottom) = _span(sx, sw, columns), _span(sy, sh, rows)
    scale = min(viewport.width / (right - left), viewport.height / (bottom - top))
    size = (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale)))
    return size, (left, top, right, bottom), scale


def rendered_size(desc: PixelDescription, viewport: Viewport | None) -> tuple[int, int]:
    """The (width, height) a frame of `desc` is rendered at (PS3.18 8.3.5.1.3)."""
    if viewport is None:
        return desc.columns, desc.rows
    return _fitted(desc.rows, desc.columns, viewport)[0]


def fit_viewport(image: np.ndarray, viewport: Viewport | None) -> np.ndarray:
    """The source region (clipped to the image, flipped where sw or sh is negative) scaled to
    fit inside vw x vh with its aspect ratio kept (PS3.18 8.3.5.1.3)."""
    if viewport is None:
        return image
    rows, columns = image.shape[:2]
    size, box, scale = _fitted(rows, columns, viewport)
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
    fitted = np.asarray(Image.fromarray(image).resize(size, resample, box))
    _, _, sw, sh = viewport.source or (0.0, 0.0, 1.0, 1.0)  # a negative side flips
    return np.ascontiguousarray(fitted[::-1 if sh < 0 else 1, ::-1 if sw < 0 else 1])


def encode_image(images: Sequence[np.ndarray], params: RenderParams) -> bytes:
    """The first image as JPEG (at params.quality) or PNG, or every image as one GIF, animated
    when there are several (looping, GIF_FRAME_MS per frame); greyscale stays greyscale."""
    form = _PIL_FORMATS[params.media_type]
    pictures = [Image.fromarray(image) for image in images[:None if form == "GIF" else 1]]
    options: dict[str, object] = {"quality": params.quality} if form == "JPEG" else {}
    if form == "GIF":
        options = {"save_all": True, "append_images": pictures[1:], "duration": GIF_FRAME_MS,
                   "loop": 0}
    out = BytesIO()
    pictures[0].save(out, form, **options)
    return out.getvalue()


# --- working memory -------------------------------------------------------------------------

# What one render holds, measured (peak RSS) on 8000 x 8000 frames: per stored sample, the
# frame as read, the decoded samples and the int64 or float64 steps of PS3.3 C.11 (floating
# point samples take every step in float64); per output byte (three per colour pixel), the
# resized image, its array and the encoder's copy.
SAMPLE_BYTES = 12
FLOAT_SAMPLE_BYTES = 32
OUTPUT_COPIES = 4


def render_need(desc: PixelDescription, frames: int, viewport: Viewport | None,
                max_pixels: int) -> int:
    """The bytes of working memory rendering `frames` frames of `desc` as one picture takes
    (frames are decoded one at a time; a GIF holds all of them once rendered). PixelError
    when a frame, or the picture, has more than `max_pixels` pixels."""
    if desc.rows * desc.columns > max_pixels:
        raise PixelError(f"frames of {desc.columns}x{desc.rows} pixels are not rendered: "
                         f"at most {max_pixels} pixels per frame")
    width, height = rendered_size(desc, viewport)
    shown = width * height * frames
    if shown > max_pixels:
        raise PixelError(f"the picture asked for is {frames} frame(s) of {width}x{height} "
                         f"pixels; at most {max_pixels} pixels are rendered in one picture "
                         "(ask for a smaller viewport or fewer frames)")
    per_sample = FLOAT_SAMPLE_BYTES if desc.floating else SAMPLE_BYTES
    colours = 1 if desc.floating or desc.photometric in MONOCHROME else 3
    return desc.rows * desc.columns * desc.samples * per_sample + \
        shown * colours * OUTPUT_COPIES
