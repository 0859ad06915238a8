"""Rendered resources: PS3.18 10.4.1.1.3 and 8.3.5 (query parameters), media types 8.7.4;
thumbnails (PS3.18 10.4.1.1.4, from Sup 203).

Rendering leaves the server free in how it scales and which frame a multi-frame instance
shows, so the tests check sizes, formats and, where the standard fixes the arithmetic (the
linear VOI function of PS3.3 C.11.2.1.2.1), the pixel values.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO

import numpy as np
import pytest
import requests
from numpy.typing import NDArray
from PIL import Image

from conformance.corpus import Corpus, Instance
from conformance.wire import media_type, query_url

JPEG, PNG = "image/jpeg", "image/png"
FORMATS = {JPEG: "JPEG", PNG: "PNG"}


def _render(http: requests.Session, url: str, accept: str,
            params: dict[str, str] | None = None) -> requests.Response:
    # Commas stay literal (RFC 3986 allows them in a query): `viewport=64,64`, not `64%2C64`.
    return http.get(query_url(url, list((params or {}).items())), headers={"Accept": accept})


def _picture(response: requests.Response, accept: str) -> Image.Image:
    """The single-part picture of a 200 response, checked to be of the media type asked for."""
    assert response.status_code == 200, f"{response.status_code}: {response.text[:300]}"
    assert media_type(response.headers.get("content-type", ""))[0] == accept
    picture = Image.open(BytesIO(response.content))
    assert picture.format == FORMATS[accept]
    picture.load()
    return picture


def _grey(picture: Image.Image) -> NDArray[np.float64]:
    """Grey levels 0-255 of an 8-bit (or 16-bit, scaled) grey or grey-looking RGB picture."""
    if picture.mode in ("I;16", "I;16B", "I"):
        return np.asarray(picture, dtype=np.float64) / 257
    return np.asarray(picture.convert("L"), dtype=np.float64)


def _linear_voi(values: NDArray[np.float64], center: float, width: float) -> NDArray[np.float64]:
    """PS3.3 C.11.2.1.2.1: the linear VOI function onto 0-255."""
    low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    ramp = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.where(values <= low, 0.0, np.where(values > high, 255.0, ramp))


def _size(instance: Instance) -> tuple[int, int]:
    return int(instance.dataset.Columns), int(instance.dataset.Rows)


@pytest.mark.parametrize("accept", [JPEG, PNG], ids=["jpeg", "png"])
def test_rendered_instance_in_requested_format(corpus: Corpus, base_url: str,
                                               http: requests.Session, accept: str) -> None:
    """PS3.18 10.4.1.1.3 and 8.7.4: a rendered instance as image/jpeg (the default) or
    image/png, at the image's own size when no viewport is given (8.3.5.1.3)."""
    instance = corpus.named("CT_small.dcm")
    picture = _picture(_render(http, f"{base_url}/{instance.path}/rendered", accept), accept)
    assert picture.size == _size(instance)


def test_viewport_fits_the_picture(corpus: Corpus, base_url: str,
                                   http: requests.Session) -> None:
    """PS3.18 8.3.5.1.3: `viewport=64,64` scales the 128×128 image to fit 64×64."""
    instance = corpus.named("CT_small.dcm")
    response = _render(http, f"{base_url}/{instance.path}/rendered", JPEG,
                       {"viewport": "64,64"})
    width, height = _picture(response, JPEG).size
    assert width <= 64 and height <= 64 and max(width, height) == 64, (width, height)


def test_window_applies_the_linear_voi_function(corpus: Corpus, base_url: str,
                                                http: requests.Session) -> None:
    """PS3.18 8.3.5.1.4 and PS3.3 C.11.2.1.2.1: `window=center,width,linear` on a 16-bit CT
    maps modality values (Rescale Slope/Intercept applied) through the linear VOI function;
    every PNG grey level is within ±2 of it."""
    instance = corpus.named("CT_small.dcm")
    center, width = 50, 700
    response = _render(http, f"{base_url}/{instance.path}/rendered", PNG,
                       {"window": f"{center},{width},linear"})
    served = _grey(_picture(response, PNG))
    ds = instance.dataset
    modality = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = _linear_voi(modality.astype(np.float64), center, width)
    assert served.shape == expected.shape
    worst = float(np.abs(served - expected).max())
    assert worst <= 2, f"grey levels differ by up to {worst:.0f} from the linear VOI"


@pytest.mark.transcoding
def test_rendered_frame(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """PS3.18 10.4.1.1.3 (rendered frames resource): `/frames/21/rendered` of a 30-frame JPEG
    Baseline YBR instance is frame 21 at 320×240 in RGB: within a mean 4 levels of pydicom's
    decoding (decoders differ slightly), and nearer it than frame 1 (5 levels away)."""
    instance = corpus.named("examples_ybr_color.dcm")
    response = _render(http, f"{base_url}/{instance.path}/frames/21/rendered", PNG)
    picture = _picture(response, PNG)
    assert picture.size == _size(instance)
    served = np.asarray(picture.convert("RGB"), dtype=np.float64)
    frames = instance.dataset.pixel_array.astype(np.float64)  # pydicom converts YBR to RGB
    error, error_first = (float(np.abs(served - frames[i]).mean()) for i in (20, 0))
    assert error < 4 and error < error_first, \
        f"mean difference {error:.1f} from frame 21, {error_first:.1f} from frame 1"


def test_quality_is_accepted(corpus: Corpus, base_url: str, http: requests.Session,
                             observe: Callable[[str, str], None]) -> None:
    """PS3.18 8.3.5.1.2: `quality` (1-100) is accepted for image/jpeg; how much it changes the
    picture is the server's choice (sizes recorded)."""
    instance = corpus.named("CT_small.dcm")
    url = f"{base_url}/{instance.path}/rendered"
    sizes = []
    for quality in ("10", "95"):
        response = _render(http, url, JPEG, {"quality": quality})
        assert _picture(response, JPEG).size == _size(instance)
        sizes.append(len(response.content))
    observe("JPEG bytes at quality 10 / 95", f"{sizes[0]} / {sizes[1]}")


@pytest.mark.optional
def test_thumbnail_of_instance(corpus: Corpus, base_url: str, http: requests.Session) -> None:
    """PS3.18 10.4.1.1.4 (Sup 203): an instance thumbnail as image/jpeg, of a size the server
    chooses. Thumbnail resources are optional for an origin server; a refusal is reported as
    not supported."""
    instance = corpus.named("CT_small.dcm")
    response = _render(http, f"{base_url}/{instance.path}/thumbnail", JPEG)
    if response.status_code in (400, 404, 405, 406, 501):
        pytest.fail(f"thumbnail resource not supported ({response.status_code})")
    width, height = _picture(response, JPEG).size
    assert width > 0 and height > 0
