"""Retrieve frames (PS3.18 10.4.1.1.2) in every frame media type and transfer syntax
(PS3.18 Table 8.7.3-5 and the Cloud Healthcare API's list, plus image/png).

Frames are asked for in an unsorted list with repeats; each part's bytes are decoded with a
decoder other than the server's (libjpeg via pylibjpeg for JPEG and JPEG-LS, OpenJPEG via
pylibjpeg for JPEG 2000 and HTJ2K, pydicom's RLE decoder, Pillow for PNG, zlib for deflate;
imagecodecs for JPEG XL, which nothing else here reads) and compared with the stored frame.
"""

import zlib
from dataclasses import dataclass
from io import BytesIO

import imagecodecs
import libjpeg
import numpy as np
import openjpeg
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.encaps import generate_frames
from pydicom.pixels import convert_color_space
from pydicom.pixels.decoders.rle import _rle_decode_frame

from tests.conftest import LiveServer
from tests.dataset_factories import MULTIFRAME_GREY_BYTE_SC, instance_path, synthetic_image
from tests.multipart_parts import media_params, parse_multipart
from tests.test_transcoding_matrix import (
    COLOUR_RMSE_FRACTION,
    DEFLATED_FRAMES,
    EXPLICIT,
    HTJ2K,
    HTJ2K_LOSSLESS,
    HTJ2K_RPCL,
    J2K,
    J2K_LOSSLESS,
    JPEG_BASELINE,
    JPEG_EXTENDED,
    JPEG_LOSSLESS,
    JPEG_LOSSY,
    JPEG_LS,
    JPEG_LS_NEAR,
    JPEG_SV1,
    JXL,
    JXL_LOSSLESS,
    LOSSY_METHOD,
    LOSSY_RMSE_FRACTION,
    NATIVE,
    NEAR_LOSSLESS_MAX_ERROR,
    RLE,
    WAVELET_AIM_SLACK,
    WAVELET_LOSSY,
    PixelAttributes,
    assert_equal_frames,
    assert_error,
    distinct_corpus,
    independent_reference,
    luma,
    native_frame,
    quietly,
    refusals,
    rmse,
    sign_extend,
    store,
    wavelet_aim,
)

OCTET = "application/octet-stream"
PNG = "image/png"
MULTIFRAME_GREY_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"

# (part media type, transfer-syntax parameter or None, test id)
FORMS = [
    (OCTET, EXPLICIT, "octet-explicit"), (OCTET, "*", "octet-as-stored"),
    ("image/jpeg", JPEG_BASELINE, "jpeg-baseline"), ("image/jpeg", JPEG_EXTENDED, "jpeg-extended"),
    ("image/jpeg", JPEG_LOSSLESS, "jpeg-lossless"), ("image/jpeg", JPEG_SV1, "jpeg-sv1"),
    ("image/jls", JPEG_LS, "jls"), ("image/jls", JPEG_LS_NEAR, "jls-near"),
    ("image/jp2", J2K_LOSSLESS, "jp2-lossless"), ("image/jp2", J2K, "jp2"),
    ("image/jphc", HTJ2K_LOSSLESS, "jphc-lossless"), ("image/jphc", HTJ2K_RPCL, "jphc-rpcl"),
    ("image/jphc", HTJ2K, "jphc"), ("image/jxl", JXL_LOSSLESS, "jxl-lossless"),
    ("image/jxl", JXL, "jxl"), ("image/dicom-rle", RLE, "rle"),
    ("application/x-deflate", DEFLATED_FRAMES, "deflate"), (PNG, None, "png"),
]
# What each stored syntax's frames travel as (PS3.18 Table 8.7.3-5).
STORED_MEDIA = {RLE: "image/dicom-rle", J2K: "image/jp2", JPEG_LS: "image/jls",
                JPEG_BASELINE: "image/jpeg"}

CORPUS = ("CT_small.dcm", "examples_rgb_color.dcm", "SC_rgb_rle_2frame.dcm",
          "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "JPEG2000.dcm",
          "examples_ybr_color.dcm")
GENERATED = {
    "gen_mono8_4frames": lambda: synthetic_image(bits_stored=8, frames=4,
                                                 sop_class=MULTIFRAME_GREY_BYTE_SC,
                                                 modality="OT"),
    "gen_ct12_signed_3frames": lambda: synthetic_image(bits_stored=12, signed=True, frames=3,
                                                       sop_class=MULTIFRAME_GREY_WORD_SC),
    "gen_ct12_unsigned": lambda: synthetic_image(bits_stored=12),
}
# 16-bit signed CT, 8-bit RGB, RGB RLE multi-frame, 8-bit and 12-bit multi-frame, 12-bit.
FRAME_SOURCES = ("CT_small.dcm", "examples_rgb_color.dcm", "SC_rgb_rle_2frame.dcm",
                 "gen_mono8_4frames", "gen_ct12_signed_3frames", "gen_ct12_unsigned")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@dataclass(frozen=True)
class Stored:
    name: str
    data: bytes
    ds: pydicom.Dataset
    reference: np.ndarray  # (frames, rows, columns[, 3]), colour as RGB

    @property
    def ts(self) -> str:
        return str(self.ds.file_meta.TransferSyntaxUID)

    @property
    def url(self) -> str:
        return instance_path(self.ds)

    @property
    def count(self) -> int:
        return int(self.ds.get("NumberOfFrames", 1) or 1)

    @property
    def signed(self) -> bool:
        return int(self.ds.get("PixelRepresentation", 0)) == 1

    @property
    def bits_stored(self) -> int:
        return int(self.ds.BitsStored)

    @property
    def samples(self) -> int:
        return int(self.ds.get("SamplesPerPixel", 1))

    def attributes(self) -> PixelAttributes:
        ds = self.ds
        return PixelAttributes(self.samples, int(ds.BitsAllocated), self.bits_stored,
                               self.signed, str(ds.PhotometricInterpretation), False)

    def stored_frames(self) -> list[bytes]:
        if self.ds.file_meta.TransferSyntaxUID.is_encapsulated:
            return list(generate_frames(self.ds.PixelData, number_of_frames=self.count))
        size = len(self.ds.PixelData) // self.count
        return [self.ds.PixelData[i * size:(i + 1) * size] for i in range(self.count)]

    def wanted(self) -> list[int]:
        """An unsorted frame list with a repeat: 3,1,3 (2,1,2 or 1,1 for fewer frames)."""
        last = min(self.count, 3)
        return [last, 1, last] if last > 1 else [1, 1]


@pytest.fixture(scope="module")
def stored(shared_server: LiveServer) -> dict[str, Stored]:
    files = distinct_corpus(CORPUS)
    for name, make in GENERATED.items():
        files[name] = make()
    store(shared_server, list(files.values()))
    out = {}
    for name, data in files.items():
        with quietly():
            ds = pydicom.dcmread(BytesIO(data))
        out[name] = Stored(name, data, ds, independent_reference(ds))
    return out


def get(url: str, accept: str) -> requests.Response:
    return requests.get(url, headers={"Accept": accept}, timeout=60)


def frames_url(server: LiveServer, item: Stored, numbers: list[int]) -> str:
    return f"{server.dicomweb}{item.url}/frames/{','.join(map(str, numbers))}"


def accept_for(media: str, ts: str | None) -> str:
    return f"multipart/related; type={media}" + (f"; transfer-syntax={ts}" if ts else "")


# -- Independent decoders, one per part media type ---------------------------------------------


def as_signed(array: np.ndarray, item: Stored) -> np.ndarray:
    """Decoders hand back the unsigned Bits Stored pattern of signed samples (PS3.5 8.2.1)."""
    return sign_extend(array, item.bits_stored) if item.signed else array


def decode_rle(data: bytes, item: Stored) -> np.ndarray:
    ds = item.ds
    rows, columns, samples = int(ds.Rows), int(ds.Columns), item.samples
    bits = int(ds.BitsAllocated)
    planes = _rle_decode_frame(data, rows, columns, samples, bits)  # little endian, by plane
    kind = "i" if item.signed else "u"
    flat = np.frombuffer(bytes(planes), f"<{kind}{bits // 8}")
    return flat.reshape(samples, rows, columns).transpose(1, 2, 0).squeeze()


def decode_part(data: bytes, media: str, ts: str, item: Stored) -> np.ndarray:
    """One frame's bytes as samples of the frame's shape, colour as RGB."""
    if media == OCTET:
        return native_frame(data, item.ds)
    if media == "application/x-deflate":
        return native_frame(zlib.decompress(data, -zlib.MAX_WBITS), item.ds)
    if media == PNG:
        return np.asarray(Image.open(BytesIO(data)))
    if media == "image/dicom-rle":
        return decode_rle(data, item)
    if media in ("image/jp2", "image/jphc"):
        return np.asarray(openjpeg.decode(data))  # the colour transform is undone as coded
    if media == "image/jxl":
        return as_signed(np.asarray(imagecodecs.jpegxl_decode(data)), item)
    array = as_signed(np.asarray(libjpeg.decode(data)), item)  # JPEG and JPEG-LS, as coded
    if item.samples == 3 and ts in JPEG_LOSSY:
        array = convert_color_space(array, "YBR_FULL", "RGB")  # lossy JPEG colour is YCbCr
    return array


def check_frame(got: np.ndarray, expected: np.ndarray, ts: str | None, item: Stored,
                what: str) -> None:
    if ts not in LOSSY_METHOD:
        assert_equal_frames(got[np.newaxis], expected[np.newaxis], what)
        return
    assert got.shape == expected.shape, (what, got.shape, expected.shape)
    if ts == JPEG_LS_NEAR:
        error = np.abs(got.astype(np.float64) - expected).max()
        assert error <= NEAR_LOSSLESS_MAX_ERROR, (what, error)
        return
    scale = 2.0 ** item.bits_stored
    error = rmse(got, expected)
    if item.samples == 3:
        assert error <= COLOUR_RMSE_FRACTION * scale, (what, error)
        error = rmse(luma(got), luma(expected))
    assert error <= LOSSY_RMSE_FRACTION * scale, (what, error)
    if ts in WAVELET_LOSSY:
        aim = wavelet_aim(item.bits_stored)
        assert rmse(got, expected) <= WAVELET_AIM_SLACK * aim, (what, rmse(got, expected), aim)


def png_refusals(pixels: PixelAttributes) -> list[tuple[str, ...]]:
    """PNG frames hold the stored sample values losslessly: 1 or 3 unsigned integer samples of
    at most 16 bits."""
    if pixels.floating:
        return [("float",)]
    if pixels.bits_allocated == 1:
        return [("1-bit",)]
    reasons: list[tuple[str, ...]] = []
    if pixels.bits_stored > 16:
        reasons.append(("bits",))
    if pixels.signed:
        reasons.append(("signed",))
    return reasons


def expected_part_type(media: str, ts: str | None, item: Stored) -> tuple[str, dict[str, str]]:
    if media == PNG:
        return PNG, {}
    if ts == "*":
        if item.ts in NATIVE:
            return OCTET, {"transfer-syntax": EXPLICIT}
        return STORED_MEDIA[item.ts], {"transfer-syntax": item.ts}
    assert ts is not None
    return media, {"transfer-syntax": ts}


# -- Every source × every form -----------------------------------------------------------------


@pytest.mark.parametrize(("media", "ts"), [pytest.param(m, t, id=i) for m, t, i in FORMS])
@pytest.mark.parametrize("name", FRAME_SOURCES)
def test_frames_in_every_media_type(stored: dict[str, Stored], shared_server: LiveServer,
                                    name: str, media: str, ts: str | None) -> None:
    item = stored[name]
    wanted = item.wanted()
    response = get(frames_url(shared_server, item, wanted), accept_for(media, ts))
    if media == PNG:
        expected_refusals = png_refusals(item.attributes())
    elif ts in ("*", item.ts):
        expected_refusals = []
    else:
        assert ts is not None
        expected_refusals = refusals(item.attributes(), ts)
    if expected_refusals:
        assert response.status_code == 406, (
            f"{name} frames cannot be {media} {ts} (reason: any of {expected_refusals}), yet "
            f"the answer is {response.status_code}")
        message = assert_error(response, 406).lower()
        assert any(w in message for words in expected_refusals for w in words), message
        return
    assert response.status_code == 200, response.text[:500]
    top, params = media_params(response.headers["content-type"])
    part_media, part_params = expected_part_type(media, ts, item)
    assert (top, params["type"]) == ("multipart/related", part_media)
    parts = parse_multipart(response)
    assert len(parts) == len(wanted)
    stored_frames = item.stored_frames()
    for (headers, body), number in zip(parts, wanted, strict=True):
        assert media_params(headers["content-type"]) == (part_media, part_params)
        what = f"{name} frame {number} as {media} {ts}"
        if ts == "*" or ts == item.ts:
            assert body == stored_frames[number - 1], what
            continue
        got = decode_part(body, media, ts or "", item)
        check_frame(got, item.reference[number - 1], ts, item, what)


# -- Defaults and as-stored forms --------------------------------------------------------------


@pytest.mark.parametrize("name", ["examples_ybr_color.dcm", "SC_rgb_rle_2frame.dcm",
                                  "JPEG2000.dcm", "CT_small.dcm", "gen_mono8_4frames"])
def test_any_media_type_gives_the_stored_bytes(stored: dict[str, Stored],
                                               shared_server: LiveServer, name: str) -> None:
    item = stored[name]
    wanted = item.wanted()
    response = get(frames_url(shared_server, item, wanted), "*/*")
    assert response.status_code == 200, response.text[:300]
    parts = parse_multipart(response)
    stored_frames = item.stored_frames()
    assert [body for _h, body in parts] == [stored_frames[n - 1] for n in wanted]
    expected = expected_part_type(OCTET, "*", item)
    for headers, _body in parts:
        assert media_params(headers["content-type"]) == expected


@pytest.mark.parametrize("name", ["CT_small.dcm", "examples_rgb_color.dcm",
                                  "gen_ct12_signed_3frames", "SC_rgb_rle_2frame.dcm"])
def test_image_jpeg_without_syntax_is_lossless_sv1(stored: dict[str, Stored],
                                                   shared_server: LiveServer,
                                                   name: str) -> None:
    """PS3.18 Table 8.7.3-5: image/jpeg defaults to JPEG Lossless SV1 (1.2.840.10008.1.2.4.70)."""
    item = stored[name]
    wanted = item.wanted()
    response = get(frames_url(shared_server, item, wanted), "multipart/related; type=image/jpeg")
    assert response.status_code == 200, response.text[:300]
    parts = parse_multipart(response)
    assert len(parts) == len(wanted)
    for (headers, body), number in zip(parts, wanted, strict=True):
        assert media_params(headers["content-type"]) == ("image/jpeg",
                                                         {"transfer-syntax": JPEG_SV1})
        assert body[:2] == b"\xff\xd8" and b"\xff\xc3" in body  # SOF3: lossless process
        got = decode_part(body, "image/jpeg", JPEG_SV1, item)
        assert_equal_frames(got[np.newaxis], item.reference[number - 1][np.newaxis], name)


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                  "SC_rgb_rle_2frame.dcm", "JPEG2000.dcm"])
def test_octet_stream_of_a_compressed_source_is_native_little_endian(
        stored: dict[str, Stored], shared_server: LiveServer, name: str) -> None:
    item = stored[name]
    wanted = item.wanted()
    response = get(frames_url(shared_server, item, wanted), f"multipart/related; type={OCTET}")
    assert response.status_code == 200, response.text[:300]
    parts = parse_multipart(response)
    dtype = np.dtype(f"<{'i' if item.signed else 'u'}{int(item.ds.BitsAllocated) // 8}")
    for (headers, body), number in zip(parts, wanted, strict=True):
        assert media_params(headers["content-type"]) == (OCTET, {"transfer-syntax": EXPLICIT})
        assert body == item.reference[number - 1].astype(dtype).tobytes(), (name, number)


# -- Refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("media", "ts"), [
    ("image/jpeg", J2K_LOSSLESS), ("image/jp2", JPEG_BASELINE), ("image/jls", RLE),
    ("image/dicom-rle", JPEG_SV1), ("image/jphc", J2K_LOSSLESS), ("image/jxl", HTJ2K),
    ("application/x-deflate", EXPLICIT), (OCTET, JPEG_LS),
])
def test_a_media_type_with_a_syntax_it_cannot_carry_is_406(
        stored: dict[str, Stored], shared_server: LiveServer, media: str, ts: str) -> None:
    item = stored["examples_rgb_color.dcm"]
    response = get(frames_url(shared_server, item, [1]), accept_for(media, ts))
    message = assert_error(response, 406)
    assert ts in message


@pytest.mark.parametrize("numbers", [[5], [1, 5], [4, 1, 99]])
@pytest.mark.parametrize("accept", [f"multipart/related; type={OCTET}",
                                    f"multipart/related; type=image/jp2; "
                                    f"transfer-syntax={J2K_LOSSLESS}",
                                    f"multipart/related; type={PNG}"])
def test_a_frame_beyond_the_count_is_400(stored: dict[str, Stored], shared_server: LiveServer,
                                         numbers: list[int], accept: str) -> None:
    item = stored["gen_mono8_4frames"]
    message = assert_error(get(frames_url(shared_server, item, numbers), accept), 400)
    assert "does not exist" in message


# -- dicomweb-client ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CT_small.dcm", "examples_rgb_color.dcm",
                                  "gen_mono8_4frames"])
def test_dicomweb_client_frames_in_jpeg_2000(stored: dict[str, Stored],
                                             shared_server: LiveServer, name: str) -> None:
    item = stored[name]
    wanted = item.wanted()
    client = DICOMwebClient(shared_server.dicomweb)
    frames = client.retrieve_instance_frames(
        item.ds.StudyInstanceUID, item.ds.SeriesInstanceUID, item.ds.SOPInstanceUID,
        frame_numbers=wanted, media_types=(("image/jp2", J2K_LOSSLESS),))
    assert len(frames) == len(wanted)
    for data, number in zip(frames, wanted, strict=True):
        got = decode_part(data, "image/jp2", J2K_LOSSLESS, item)
        assert_equal_frames(got[np.newaxis], item.reference[number - 1][np.newaxis], name)
