"""pacs.pixels.render checked against pictures computed here with plain numpy, straight from
the formulas of PS3.3 C.11 (written independently of render.py), over pydicom's bundled files
and synthetic datasets; the viewport against numpy slicing; the encoders by decoding again."""

import io
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image
from pydicom import Dataset, dcmread, examples
from pydicom.dataset import FileMetaDataset
from pydicom.pixels import pixel_array
from pydicom.pixels.processing import apply_color_lut, convert_color_space
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from pacs.dicom.pydicom_setup import configure_pydicom
from pacs.pixels.codecs import Frame, codec_for
from pacs.pixels.description import PixelDescription, PixelError, describe
from pacs.pixels.render import (
    RENDERED_MEDIA_TYPES,
    RenderParams,
    Viewport,
    Window,
    display_image,
    encode_image,
    fit_viewport,
    frame_header,
    parse_render_params,
)
from pacs.pixels.source import dataset_frames
from tests.dataset_factories import corpus_path


@pytest.fixture(autouse=True, scope="module")
def _pydicom_configured() -> Iterator[None]:
    configure_pydicom()
    yield


# --- the PS3.3 formulas, as written in the standard, output range 0..255 -------------------

def linear(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """C.11.2.1.2.1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ramp = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
    return np.where(x <= c - 0.5 - (w - 1) / 2, 0.0,
                    np.where(x > c - 0.5 + (w - 1) / 2, 255.0, ramp))


def linear_exact(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """C.11.2.1.3.2."""
    ramp = ((x - c) / w + 0.5) * 255
    return np.where(x <= c - w / 2, 0.0, np.where(x > c + w / 2, 255.0, ramp))


def sigmoid(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """C.11.2.1.3.1."""
    with np.errstate(over="ignore"):
        return 255 / (1 + np.exp(-4 * (x - c) / w))


def stretched(x: np.ndarray) -> np.ndarray:
    """The frame's min..max onto 0..255 (no VOI in the header)."""
    x = x.astype(np.float64)
    return (x - x.min()) / (x.max() - x.min()) * 255


def assert_picture(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == np.uint8
    assert got.shape == expected.shape
    assert np.abs(got.astype(np.float64) - expected).max() <= 1


# --- inputs ---------------------------------------------------------------------------------

def decoded(ds: Dataset) -> tuple[list[Frame], PixelDescription]:
    """Every frame of `ds` through our codecs, as the server decodes them."""
    desc = describe(ds)
    codec = codec_for(str(ds.file_meta.TransferSyntaxUID))
    return [codec.decode(data, desc) for data in dataset_frames(ds, desc)], desc


def render(ds: Dataset, window: Window | None = None, index: int = 0) -> np.ndarray:
    frames, desc = decoded(ds)
    return display_image(frames[index], ds, desc, window)


def bundled(name: str) -> Dataset:
    return dcmread(corpus_path(name))


def synthetic(pixels: np.ndarray, photometric: str = "MONOCHROME2",
              **attributes: object) -> Dataset:
    """A native little endian Secondary Capture of `pixels` (rows, cols[, 3] or frames first
    when NumberOfFrames is given); `attributes` are set by keyword."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    colour = photometric in ("RGB", "YBR_FULL")
    shape = pixels.shape[-3:-1] if colour else pixels.shape[-2:]
    ds.Rows, ds.Columns = shape
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    floating = pixels.dtype.kind == "f"
    ds.BitsAllocated = ds.BitsStored = pixels.dtype.itemsize * 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(pixels.dtype.kind == "i")
    if floating:
        ds.FloatPixelData = pixels.astype("<f4").tobytes()
        del ds.BitsStored, ds.HighBit, ds.PixelRepresentation
    else:
        ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
        ds["PixelData"].VR = "OB" if pixels.dtype.itemsize == 1 else "OW"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def ramp(low: int, high: int, shape: tuple[int, int] = (64, 64),
         dtype: str = "int16") -> np.ndarray:
    return np.linspace(low, high, shape[0] * shape[1]).round().astype(dtype).reshape(shape)


def lut_item(entries: int, first: int, bits: int, data: object) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [entries, first, bits]
    item.LUTData = data
    return item


# --- greyscale (PS3.3 C.11) -----------------------------------------------------------------

def test_ct_window_parameter_applies_to_rescaled_values() -> None:
    ds = examples.ct
    hounsfield = pixel_array(ds) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert_picture(render(ds, Window(40, 400)), linear(hounsfield, 40, 400))


def test_without_voi_the_frame_range_is_stretched() -> None:
    ds = examples.ct  # no Window Center/Width, no VOI LUT
    got = render(ds)
    assert_picture(got, stretched(pixel_array(ds) * 1.0 - 1024))
    assert got.min() == 0 and got.max() == 255


def test_header_window_is_used() -> None:
    ds = examples.mr  # Window 600/1600, no rescale
    assert_picture(render(ds), linear(pixel_array(ds).astype(float), 600, 1600))


def test_first_of_several_header_windows_is_used() -> None:
    ds = examples.overlay  # Window Center [450, 200], Width [790, 443]
    assert_picture(render(ds), linear(pixel_array(ds).astype(float), 450, 790))


@pytest.mark.parametrize(("function", "formula", "center", "width"), [
    ("linear", linear, 300, 500),
    ("linear-exact", linear_exact, 300, 500),
    ("sigmoid", sigmoid, 300, 500),
    ("linear", linear, 250, 1),  # a threshold: x <= c - 0.5 is black, above is white
    ("linear-exact", linear_exact, 250, 0.5),
    ("sigmoid", sigmoid, 250, 0.25),  # a near-step without overflow warnings
])
def test_window_parameter_overrides_the_header(function: str, formula: object, center: float,
                                               width: float) -> None:
    ds = examples.mr
    expected = formula(pixel_array(ds).astype(float), center, width)  # type: ignore[operator]
    got = render(ds, Window(center, width, function))
    assert_picture(got, expected)
    assert not np.array_equal(got, render(ds))


@pytest.mark.parametrize(("function", "formula"), [
    ("LINEAR_EXACT", linear_exact), ("SIGMOID", sigmoid), ("LINEAR", linear)])
def test_header_voi_lut_function_and_rescale(function: str, formula: object) -> None:
    stored = ramp(-2048, 2047)
    ds = synthetic(stored, RescaleSlope=2, RescaleIntercept=-1024, WindowCenter=-500,
                   WindowWidth=3000, VOILUTFunction=function)
    expected = formula(stored * 2.0 - 1024, -500, 3000)  # type: ignore[operator]
    assert_picture(render(ds), expected)


def test_monochrome1_is_inverted_after_voi() -> None:
    ds = examples.ct
    ds.PhotometricInterpretation = "MONOCHROME1"
    hounsfield = pixel_array(ds) * 1.0 - 1024
    assert_picture(render(ds, Window(40, 400)), 255 - linear(hounsfield, 40, 400))
    assert_picture(render(ds), 255 - stretched(hounsfield))


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_a_flat_image_is_mid_grey(photometric: str) -> None:
    ds = synthetic(np.full((8, 12), 300, np.uint16), photometric)
    assert_picture(render(ds), np.full((8, 12), 127.5))


def test_voi_lut_sequence() -> None:
    stored = ramp(0, 4095, dtype="uint16")
    table = (np.linspace(0, 1, 2000) ** 0.5 * 65535).round().astype("<u2")
    ds = synthetic(stored, VOILUTSequence=Sequence([lut_item(2000, 100, 16, table.tobytes())]))
    ds.VOILUTSequence[0]["LUTData"].VR = "OW"
    expected = table[np.clip(stored.astype(int) - 100, 0, 1999)] / 65535 * 255
    assert_picture(render(ds), expected)


def test_voi_lut_sequence_of_8_bit_entries_as_us_values() -> None:
    stored = ramp(0, 255, (16, 16), "uint8")
    table = np.arange(256)[::-1]  # an inverting LUT
    ds = synthetic(stored, VOILUTSequence=Sequence([lut_item(256, 0, 8, table.tolist())]))
    ds.VOILUTSequence[0]["LUTData"].VR = "US"
    assert_picture(render(ds), 255.0 - stored)


def test_a_window_takes_precedence_over_a_voi_lut() -> None:
    stored = ramp(0, 1000, dtype="uint16")
    item = lut_item(1001, 0, 16, np.zeros(1001, "<u2").tobytes())
    ds = synthetic(stored, WindowCenter=500, WindowWidth=1000, VOILUTSequence=Sequence([item]))
    assert_picture(render(ds), linear(stored.astype(float), 500, 1000))


def test_modality_lut_sequence_with_a_signed_first_value() -> None:
    stored = ramp(-1200, 1200)
    table = (np.arange(2048) * 2 + 7).astype("<u2")  # maps -1000..1047 to 7..4101
    item = lut_item(2048, 2**16 - 1000, 12, table.tobytes())  # -1000 written as US
    ds = synthetic(stored, ModalityLUTSequence=Sequence([item]), WindowCenter=2000,
                   WindowWidth=3000)
    ds.ModalityLUTSequence[0]["LUTData"].VR = "OW"
    modality = table[np.clip(stored.astype(int) + 1000, 0, 2047)].astype(float)
    assert_picture(render(ds), linear(modality, 2000, 3000))


def test_enhanced_multiframe_shared_functional_groups() -> None:
    stored = ramp(0, 3000, dtype="uint16")
    shared = Dataset()
    transform, voi = Dataset(), Dataset()
    transform.RescaleSlope, transform.RescaleIntercept = 1, -1024
    voi.WindowCenter, voi.WindowWidth = 300, 1500
    shared.PixelValueTransformationSequence = Sequence([transform])
    shared.FrameVOILUTSequence = Sequence([voi])
    ds = synthetic(stored, SharedFunctionalGroupsSequence=Sequence([shared]))
    assert_picture(render(ds), linear(stored - 1024.0, 300, 1500))


def test_enhanced_multiframe_per_frame_functional_groups() -> None:
    """Each frame's own rescale and window (PS3.3 C.7.6.16.2.9-10) win over the shared ones;
    the header itself is not changed."""
    stored = np.stack([ramp(0, 3000, dtype="uint16"), ramp(500, 2500, dtype="uint16")])
    shared, first, second = Dataset(), Dataset(), Dataset()
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth = 300, 1500
    shared.FrameVOILUTSequence = Sequence([voi])
    for item, (slope, intercept, window) in ((first, (1, -1024, None)),
                                            (second, (2, -3000, (100, 400)))):
        transform = Dataset()
        transform.RescaleSlope, transform.RescaleIntercept = slope, intercept
        item.PixelValueTransformationSequence = Sequence([transform])
        if window:
            own = Dataset()
            own.WindowCenter, own.WindowWidth = window
            item.FrameVOILUTSequence = Sequence([own])
    ds = synthetic(stored, NumberOfFrames=2, SharedFunctionalGroupsSequence=Sequence([shared]),
                   PerFrameFunctionalGroupsSequence=Sequence([first, second]))
    frames, desc = decoded(ds)
    one = display_image(frames[0], frame_header(ds, 1), desc, None)
    two = display_image(frames[1], frame_header(ds, 2), desc, None)
    assert_picture(one, linear(stored[0] - 1024.0, 300, 1500))
    assert_picture(two, linear(stored[1] * 2.0 - 3000, 100, 400))
    assert "RescaleSlope" not in ds and "WindowCenter" not in ds


def test_float_pixel_data_is_stretched_and_nan_is_black() -> None:
    values = np.linspace(-1.5, 2.5, 100, dtype=np.float32).reshape(10, 10)
    values[3, 4] = np.nan
    expected = (values.astype(float) + 1.5) / 4 * 255
    expected[3, 4] = 0
    assert_picture(render(synthetic(values)), expected)


def test_multiframe_frames_render_separately() -> None:
    ds = bundled("rtdose.dcm")  # 15 frames of 32-bit unsigned dose, no VOI
    reference = pixel_array(ds)
    pictures = [render(ds, index=i) for i in range(int(ds.NumberOfFrames))]
    for picture, frame in zip(pictures, reference, strict=True):
        assert_picture(picture, stretched(frame))
    assert len({picture.tobytes() for picture in pictures}) > 1


def test_compressed_greyscale_is_windowed_after_decoding() -> None:
    ds = bundled("MR_small_jpeg_ls_lossless.dcm")
    assert_picture(render(ds), linear(pixel_array(ds).astype(float), 600, 1600))


# --- colour (PS3.3 C.7.6.3.1) ---------------------------------------------------------------

def test_rgb_is_passed_through_and_a_window_is_ignored() -> None:
    ds = examples.rgb_color
    got = render(ds, Window(0, 1))
    np.testing.assert_array_equal(got, pixel_array(ds))


def test_rgb_over_8_bits_keeps_its_top_8_bits() -> None:
    ds = bundled("SC_rgb_rle_16bit.dcm")
    np.testing.assert_array_equal(render(ds), pixel_array(ds) >> 8)
    rgb = np.random.default_rng(3).integers(0, 4096, (8, 8, 3)).astype(np.uint16)
    twelve_bits = synthetic(rgb, "RGB", BitsStored=12, HighBit=11)
    np.testing.assert_array_equal(render(twelve_bits), rgb >> 4)


def test_ybr_full_422_native_is_converted_to_rgb() -> None:
    ds = bundled("SC_ybr_full_422_uncompressed.dcm")
    ybr = pixel_array(ds, raw=True)
    assert_picture(render(ds), convert_color_space(ybr, "YBR_FULL", "RGB").astype(float))


def test_ybr_full_against_the_t871_equations() -> None:
    rgb = np.random.default_rng(7).integers(0, 256, (16, 16, 3)).astype(np.uint8)
    r, g, b = (rgb[..., i].astype(float) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b  # ITU T.871 7, as PS3.3 C.7.6.3.1.2 cites it
    ybr = np.stack([y, 128 + (b - y) / 1.772, 128 + (r - y) / 1.402], axis=-1)
    ds = synthetic(np.clip(np.rint(ybr), 0, 255).astype(np.uint8), "YBR_FULL")
    assert_picture(render(ds), rgb.astype(float))  # the 8-bit round trip loses < 1 level


def test_jpeg_ybr_multiframe() -> None:
    ds = examples.ybr_color  # 30 frames, JPEG baseline YBR_FULL_422 decoded to RGB
    frames, desc = decoded(ds)
    reference = pixel_array(ds)
    for index in (0, 29):
        got = display_image(frames[index], ds, desc, None)
        np.testing.assert_array_equal(got, frames[index].array)
        # another JPEG decoder (pydicom's) differs by rounding only
        assert np.abs(got.astype(float) - reference[index]).mean() < 1


def test_palette_color() -> None:
    ds = examples.palette_color  # 8-bit indices, 256-entry 16-bit tables
    luts = [np.frombuffer(ds[f"{c}PaletteColorLookupTableData"].value, "<u2")
            for c in ("Red", "Green", "Blue")]
    indices = pixel_array(ds, raw=True)
    expected = np.stack([lut[indices] for lut in luts], axis=-1) >> 8
    got = render(ds)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, apply_color_lut(indices, ds) >> 8)


def test_palette_without_tables_is_a_pixel_error() -> None:
    ds = examples.palette_color
    del ds.RedPaletteColorLookupTableData
    del ds.RedPaletteColorLookupTableDescriptor
    with pytest.raises(PixelError, match="Palette Color Lookup Table"):
        render(ds)


def test_unrenderable_photometric_is_a_pixel_error() -> None:
    ds = examples.rgb_color
    frames, desc = decoded(ds)
    with pytest.raises(PixelError, match="YBR_PARTIAL_420"):
        display_image(Frame(frames[0].array, "YBR_PARTIAL_420"), ds, desc, None)


# --- viewport (PS3.18 8.3.5.1.3) ------------------------------------------------------------

NOISE = np.random.default_rng(1).integers(0, 256, (64, 80)).astype(np.uint8)


@pytest.mark.parametrize(("shape", "viewport", "size"), [
    ((256, 512), Viewport(128, 128), (64, 128)),  # landscape into a square
    ((300, 100), Viewport(200, 200), (200, 67)),  # portrait into a square
    ((20, 10), Viewport(100, 100), (100, 50)),  # small images are enlarged to fit
    ((1, 500), Viewport(50, 50), (1, 50)),  # never less than one pixel
    ((64, 80), Viewport(80, 64), (64, 80)),  # the same size
])
def test_viewport_fits_and_keeps_the_aspect_ratio(shape: tuple[int, int], viewport: Viewport,
                                                  size: tuple[int, int]) -> None:
    image = np.zeros(shape, np.uint8)
    assert fit_viewport(image, viewport).shape == size
    assert fit_viewport(np.zeros((*shape, 3), np.uint8), viewport).shape == (*size, 3)


def test_no_viewport_keeps_the_image() -> None:
    assert fit_viewport(NOISE, None) is NOISE
    np.testing.assert_array_equal(fit_viewport(NOISE, Viewport(80, 64)), NOISE)


@pytest.mark.parametrize(("source", "expected"), [
    ((5, 7, 20, 10), NOISE[7:17, 5:25]),
    ((5, 7, -20, 10), NOISE[7:17, 5:25][:, ::-1]),
    ((5, 7, 20, -10), NOISE[7:17, 5:25][::-1]),
    ((5, 7, -20, -10), NOISE[7:17, 5:25][::-1, ::-1]),
    ((60, 54, 20, 10), NOISE[54:64, 60:80]),  # clipped at the right and bottom edges
])
def test_viewport_source_region_crops_and_flips(source: tuple[float, float, float, float],
                                                expected: np.ndarray) -> None:
    viewport = Viewport(expected.shape[1], expected.shape[0], source)
    np.testing.assert_array_equal(fit_viewport(NOISE, viewport), expected)


def test_viewport_source_region_to_the_edge_then_scaled() -> None:
    viewport = Viewport(10, 10, (40, 0, float("inf"), float("inf")))  # columns 40..79
    got = fit_viewport(NOISE, viewport)
    assert got.shape == (10, 6)  # 64 x 40 fitted into 10 x 10
    halved = fit_viewport(NOISE, Viewport(20, 32, (40, 0, 40, 64)))
    assert halved.shape == (32, 20)
    reference = NOISE[:, 40:].reshape(32, 2, 20, 2).mean(axis=(1, 3))
    assert np.abs(halved.astype(float) - reference).mean() < 20  # a filtered, not a random, copy


def test_viewport_source_outside_the_image() -> None:
    with pytest.raises(ValueError, match="viewport"):
        fit_viewport(NOISE, Viewport(10, 10, (80, 0, 10, 10)))


# --- encoding -------------------------------------------------------------------------------

def decode(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


@pytest.mark.parametrize("image", [NOISE, np.dstack([NOISE, NOISE[::-1], 255 - NOISE])])
def test_png_is_lossless(image: np.ndarray) -> None:
    picture = decode(encode_image([image], RenderParams("image/png")))
    assert picture.format == "PNG" and picture.mode == ("L" if image.ndim == 2 else "RGB")
    np.testing.assert_array_equal(np.asarray(picture), image)


def test_jpeg_is_close_and_quality_matters() -> None:
    image = render(examples.ct, Window(40, 400))
    good = encode_image([image], RenderParams("image/jpeg", quality=95))
    poor = encode_image([image], RenderParams("image/jpeg", quality=10))
    picture = decode(good)
    assert picture.format == "JPEG" and picture.mode == "L"
    assert np.abs(np.asarray(picture, float) - image).mean() < 2
    assert len(poor) < len(good)


def test_several_images_as_jpeg_or_png_encode_the_first() -> None:
    for media_type in ("image/jpeg", "image/png"):
        data = encode_image([NOISE, 255 - NOISE], RenderParams(media_type, quality=100))
        assert np.abs(np.asarray(decode(data), float) - NOISE).mean() < 8


def test_gif_single_and_animated() -> None:
    single = decode(encode_image([NOISE], RenderParams("image/gif")))
    assert single.format == "GIF" and getattr(single, "n_frames", 1) == 1
    np.testing.assert_array_equal(np.asarray(single.convert("L")), NOISE)
    frames = [np.roll(NOISE, shift, axis=1) for shift in range(4)]
    animated = decode(encode_image(frames, RenderParams("image/gif")))
    assert animated.n_frames == 4 and animated.info["loop"] == 0
    assert animated.info["duration"] == 100
    for index, frame in enumerate(frames):
        animated.seek(index)
        np.testing.assert_array_equal(np.asarray(animated.convert("L")), frame)


def test_rendered_media_types() -> None:
    assert RENDERED_MEDIA_TYPES == ("image/jpeg", "image/png", "image/gif")


# --- query parameters (PS3.18 8.3.5.1) ------------------------------------------------------

def test_parameters_default() -> None:
    assert parse_render_params({}, "image/jpeg") == RenderParams()
    assert parse_render_params({}, "image/png", thumbnail=True) == \
        RenderParams("image/png", viewport=Viewport(128, 128))


def test_parameters_parsed() -> None:
    query = {"window": "40,400,linear-exact", "viewport": "512, 256", "quality": "75",
             "annotation": "", "iccprofile": "no", "charset": "UTF-8", "unknown": "x"}
    assert parse_render_params(query, "image/gif", thumbnail=True) == RenderParams(
        "image/gif", 75, Window(40, 400, "linear-exact"), Viewport(512, 256))
    assert parse_render_params({"window": "-600.5,1500"}, "image/jpeg").window == \
        Window(-600.5, 1500, "linear")
    assert parse_render_params({"window": "0,0.5,SIGMOID"}, "image/jpeg").window == \
        Window(0, 0.5, "sigmoid")
    viewport = parse_render_params({"viewport": "100,100,10,20.5,-30,40"}, "image/png").viewport
    assert viewport == Viewport(100, 100, (10, 20.5, -30, 40))
    viewport = parse_render_params({"viewport": "100,100,,,,"}, "image/png").viewport
    assert viewport == Viewport(100, 100, (0, 0, float("inf"), float("inf")))


@pytest.mark.parametrize(("query", "named"), [
    ({"quality": "0"}, "quality"),
    ({"quality": "101"}, "quality"),
    ({"quality": "high"}, "quality"),
    ({"quality": "90.5"}, "quality"),
    ({"window": "40"}, "window"),
    ({"window": "40,400,linear,4"}, "window"),
    ({"window": "forty,400"}, "window"),
    ({"window": "40,nan"}, "window"),
    ({"window": "40,0"}, "window width"),
    ({"window": "40,-5,sigmoid"}, "window width"),
    ({"window": "40,0.5,linear"}, "window width"),
    ({"window": "40,400,cubic"}, "window"),
    ({"viewport": "100"}, "viewport"),
    ({"viewport": "100,100,0,0"}, "viewport"),
    ({"viewport": "0,100"}, "viewport"),
    ({"viewport": "100,-1"}, "viewport"),
    ({"viewport": "10001,100"}, "viewport"),
    ({"viewport": "wide,100"}, "viewport"),
    ({"viewport": "100,100,-1,0,10,10"}, "viewport"),
    ({"viewport": "100,100,0,0,0,10"}, "viewport"),
    ({"viewport": "100,100,a,0,10,10"}, "viewport"),
    ({"annotation": "patient"}, "annotation"),
    ({"annotation": "patient,technique"}, "annotation"),
    ({"iccprofile": "srgb"}, "iccprofile"),
])
def test_malformed_parameters_are_named(query: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named) as error:
        parse_render_params(query, "image/jpeg")
    assert not isinstance(error.value, PixelError)


def test_annotation_refusal_says_why() -> None:
    with pytest.raises(ValueError, match="not supported: this server burns in no annotations"):
        parse_render_params({"annotation": "technique"}, "image/jpeg")


def test_unrendered_media_type() -> None:
    with pytest.raises(ValueError, match="image/jp2"):
        parse_render_params({}, "image/jp2")
