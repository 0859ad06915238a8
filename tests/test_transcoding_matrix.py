"""Transcoding on retrieve (PS3.18 8.7.3.5): every stored source × every target syntax.

Each source is stored once (STOW) and fetched in each target transfer syntax. The answer is a
406 with a reason exactly when the combination is impossible by the rules below, computed here
from the source's Image Pixel attributes; otherwise the instance is parsed with pydicom and
decoded by decoders other than the server's (pydicom's pylibjpeg / pydicom plugins; JPEG XL
with imagecodecs and deflated frames with zlib, which pydicom 3.0 cannot decode), then compared
with the source's pixels: exactly for lossless targets, within stated bounds for lossy ones.
"""

import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO

import imagecodecs
import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.encaps import generate_frames
from pydicom.multival import MultiValue
from pydicom.pixels import convert_color_space, pixel_array
from pydicom.uid import generate_uid

from tests.conftest import LiveServer
from tests.dataset_factories import (
    MULTIFRAME_GREY_BYTE_SC,
    corpus_bytes,
    corpus_path,
    ct_series,
    float_image,
    instance_path,
    synthetic_image,
)
from tests.multipart_parts import media_params, parse_multipart

DICOM = "application/dicom"
IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
RLE = "1.2.840.10008.1.2.5"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR = "1.2.840.10008.1.2.4.81"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
J2K = "1.2.840.10008.1.2.4.91"
JXL_LOSSLESS = "1.2.840.10008.1.2.4.110"
JXL = "1.2.840.10008.1.2.4.112"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_RPCL = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"
DEFLATED_FRAMES = "1.2.840.10008.1.2.8.1"

TARGETS = {  # uid: test id
    IMPLICIT: "implicit", EXPLICIT: "explicit", DEFLATED: "deflated", RLE: "rle",
    JPEG_BASELINE: "jpeg-baseline", JPEG_EXTENDED: "jpeg-extended",
    JPEG_LOSSLESS: "jpeg-lossless", JPEG_SV1: "jpeg-lossless-sv1",
    JPEG_LS: "jpeg-ls", JPEG_LS_NEAR: "jpeg-ls-near", J2K_LOSSLESS: "j2k-lossless", J2K: "j2k",
    HTJ2K_LOSSLESS: "htj2k-lossless", HTJ2K_RPCL: "htj2k-rpcl", HTJ2K: "htj2k",
    JXL_LOSSLESS: "jxl-lossless", JXL: "jxl", DEFLATED_FRAMES: "deflated-frames",
}
NATIVE = {IMPLICIT, EXPLICIT, DEFLATED, BIG_ENDIAN}
JPEG_LOSSY = {JPEG_BASELINE, JPEG_EXTENDED}
WAVELET_LOSSY = {J2K, HTJ2K}
# Lossy Image Compression Method (0028,2114) of each lossy target (PS3.3 C.7.6.1.1.5.1).
LOSSY_METHOD = {JPEG_BASELINE: "ISO_10918_1", JPEG_EXTENDED: "ISO_10918_1",
                JPEG_LS_NEAR: "ISO_14495_1", J2K: "ISO_15444_1", HTJ2K: "ISO_15444_15",
                JXL: "ISO_18181_1"}
# Colour samples leave the wavelet coders as RGB or through the reversible (lossless) or
# irreversible (lossy) component transform (PS3.5 8.2.4); YBR_FULL when not transformed.
WAVELET_PHOTOMETRIC = {J2K_LOSSLESS: "YBR_RCT", HTJ2K_LOSSLESS: "YBR_RCT",
                       HTJ2K_RPCL: "YBR_RCT", J2K: "YBR_ICT", HTJ2K: "YBR_ICT"}

# -- Bounds ------------------------------------------------------------------------------------

# Lossy JPEG, JPEG 2000, HTJ2K and JPEG XL: RMSE at most 1.5 % of the sample range 2**BitsStored
# (about 3.8 grey levels of an 8-bit image; the targets aim at 0.5 to 4). For colour this is
# measured on luminance (BT.601 luma): chroma is subsampled 4:2:2 on purpose by JPEG.
LOSSY_RMSE_FRACTION = 0.015
# Colour, all three samples: hard colour edges (examples_rgb_color's bars) lose more to 4:2:2.
COLOUR_RMSE_FRACTION = 0.03
# JPEG 2000 / HTJ2K aim at an RMSE of min(max(2**(BitsStored-10), 0.5), 4) sample units;
# OpenJPEG's rate control is approximate, so allow this multiple of the aim.
WAVELET_AIM_SLACK = 3.0
# JPEG-LS near-lossless with NEAR=2 bounds every sample's error (ISO 14495-1 A.2.1).
NEAR_LOSSLESS_MAX_ERROR = 2
# Two conforming JPEG decoders may differ slightly (IDCT rounding, chroma upsampling is not
# normative): the server's decoding of a lossy source against pydicom's.
DECODER_RMSE = 0.5
DECODER_MAX_ERROR = 4

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@contextmanager
def quietly() -> Iterator[None]:
    """pydicom warns about odd corpus files (VR mismatches, Bits Stored vs codestream)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


# -- Sources -----------------------------------------------------------------------------------

CORPUS_SOURCES = (
    "CT_small.dcm",  # 16-bit signed, explicit VR little endian
    "MR_small.dcm",  # 16-bit signed MR
    "MR_small_bigendian.dcm",  # explicit VR big endian
    "rtdose.dcm",  # 32-bit unsigned, 15 frames
    "MR_small_RLE.dcm",  # RLE lossless
    "SC_rgb_rle_2frame.dcm",  # RGB RLE, 2 frames
    "SC_rgb_rle_16bit.dcm",  # 16-bit RGB
    "JPEG2000.dcm",  # lossy JPEG 2000, 16-bit signed
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless, signed
    "JPEG-lossy.dcm",  # JPEG extended, 12-bit
    "SC_rgb_jpeg.dcm",  # JPEG baseline, RGB components (no colour transform)
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline, YBR_FULL
    "examples_ybr_color.dcm",  # JPEG baseline YBR_FULL_422, 30 frames
    "examples_palette.dcm",  # PALETTE COLOR
    "examples_rgb_color.dcm",  # 8-bit RGB native
    "SC_ybr_full_422_uncompressed.dcm",  # native YBR_FULL_422 (chroma subsampled)
    "liver_1frame.dcm",  # 1-bit segmentation
)
GENERATED_SOURCES = {
    "gen_ct12_unsigned": lambda: synthetic_image(bits_stored=12),
    "gen_ct12_signed": lambda: synthetic_image(bits_stored=12, signed=True),
    "gen_mono8_3frames": lambda: synthetic_image(bits_stored=8, frames=3,
                                                 sop_class=MULTIFRAME_GREY_BYTE_SC,
                                                 modality="OT"),
    "gen_monochrome1_10bit": lambda: synthetic_image(bits_stored=10,
                                                     photometric="MONOCHROME1",
                                                     modality="CR"),
    "gen_float32": float_image,
}
SOURCES = (*CORPUS_SOURCES, *GENERATED_SOURCES)


@dataclass
class Source:
    """One stored source: its bytes, pydicom's reading and independent decoding."""

    name: str
    data: bytes
    ds: pydicom.Dataset
    reference: np.ndarray  # (frames, rows, columns[, 3]); colour as RGB
    baseline: np.ndarray | None = None  # the server's own decoding of a lossy source

    @property
    def ts(self) -> str:
        return str(self.ds.file_meta.TransferSyntaxUID)

    @property
    def path(self) -> str:
        return instance_path(self.ds)

    @property
    def samples(self) -> int:
        return int(self.ds.get("SamplesPerPixel", 1))

    @property
    def bits_allocated(self) -> int:
        return int(self.ds.BitsAllocated)

    @property
    def bits_stored(self) -> int:
        return int(self.ds.get("BitsStored", self.bits_allocated))

    @property
    def signed(self) -> bool:
        return int(self.ds.get("PixelRepresentation", 0)) == 1

    @property
    def floating(self) -> bool:
        return "FloatPixelData" in self.ds or "DoubleFloatPixelData" in self.ds

    @property
    def photometric(self) -> str:
        return str(self.ds.PhotometricInterpretation)

    @property
    def frames(self) -> int:
        return int(self.ds.get("NumberOfFrames", 1) or 1)

    @property
    def stored_lossily(self) -> bool:
        """Its stored pixels are a lossy bitstream, which decoders may render differently."""
        return self.ts in LOSSY_METHOD


def distinct_corpus(names: tuple[str, ...] | list[str]) -> dict[str, bytes]:
    """Corpus files as Part 10 bytes; one whose SOP Instance UID an earlier one has (the
    MR_small and SC_rgb variants share theirs) gets its own, so each is a distinct instance."""
    files = {}
    seen = set()
    with quietly():
        for name in names:
            sop = pydicom.dcmread(corpus_path(name), stop_before_pixels=True).SOPInstanceUID
            fresh = generate_uid(entropy_srcs=["transcoding", name]) if sop in seen else None
            seen.add(sop)
            files[name] = corpus_bytes(name, fresh)
    return files


def source_bytes() -> dict[str, bytes]:
    """Every source as Part 10 bytes."""
    files = distinct_corpus(CORPUS_SOURCES)
    for name, make in GENERATED_SOURCES.items():
        files[name] = make()
    return files


def as_frames(array: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """Decoded pixels with a leading frame axis, whatever the frame count."""
    shape: tuple[int, ...] = (int(ds.get("NumberOfFrames", 1) or 1), int(ds.Rows),
                              int(ds.Columns))
    if int(ds.get("SamplesPerPixel", 1)) == 3:
        shape += (3,)
    return array.reshape(shape)


def independent_reference(ds: pydicom.Dataset) -> np.ndarray:
    """The source's pixels as pydicom decodes them, colour as RGB."""
    with quietly():
        try:
            array = pixel_array(ds)
        except RuntimeError:
            # JPEG-lossy.dcm: neither pylibjpeg nor Pillow decodes its 12-bit scans, so this one
            # reference comes from libjpeg-turbo via imagecodecs.
            frames = generate_frames(ds.PixelData, number_of_frames=int(
                ds.get("NumberOfFrames", 1) or 1))
            array = np.stack([imagecodecs.jpeg8_decode(f) for f in frames])
    return as_frames(array, ds)


def store(server: LiveServer, files: list[bytes]) -> None:
    boundary = "transcoding-matrix"
    body = b"".join(f"--{boundary}\r\nContent-Type: {DICOM}\r\n\r\n".encode() + data + b"\r\n"
                    for data in files) + f"--{boundary}--\r\n".encode()
    response = requests.post(f"{server.dicomweb}/studies", data=body, headers={
        "Content-Type": f'multipart/related; type="{DICOM}"; boundary={boundary}',
        "Accept": "application/dicom+json"})
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def sources(shared_server: LiveServer) -> dict[str, Source]:
    files = source_bytes()
    store(shared_server, list(files.values()))
    stored = {}
    for name, data in files.items():
        with quietly():
            ds = pydicom.dcmread(BytesIO(data))
        stored[name] = Source(name, data, ds, independent_reference(ds))
    return stored


# -- HTTP helpers (shared with test_frames_media_types) ----------------------------------------


def assert_error(response: requests.Response, status: int) -> str:
    """The Google-style JSON error body; returns its message."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == status
    assert isinstance(error["status"], str) and error["status"]
    assert isinstance(error["message"], str) and error["message"]
    return str(error["message"])


def get(url: str, accept: str) -> requests.Response:
    return requests.get(url, headers={"Accept": accept}, timeout=60)


# -- What is possible: computed from the source's attributes ----------------------------------

# Each impossible combination yields the words one of which the server's reason must contain.
BITS = ("bits",)
SIGNED = ("signed",)
PALETTE = ("palette",)
FLOAT = ("float",)
ONE_BIT = ("1-bit", "bits allocated")
NOT_COMPRESSIBLE = ("samples",)


@dataclass(frozen=True)
class PixelAttributes:
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str
    floating: bool


def attributes(source: Source) -> PixelAttributes:
    return PixelAttributes(source.samples, source.bits_allocated, source.bits_stored,
                           source.signed, source.photometric, source.floating)


# "Implicit VR Little Endian ... shall not be used with Web Services" (PS3.18 8.7.3): a full
# store never produces it on request (as stored, an implicit instance still goes out as is).
OFF_THE_WEB = ("ps3.18 8.7.3",)


def refusals(pixels: PixelAttributes, target: str) -> list[tuple[str, ...]]:
    """Why `target` cannot hold these pixels (empty when it can):

    - native syntaxes hold anything;
    - Float and Double Float Pixel Data are only ever native: every encapsulated syntax applies
      to Pixel Data (7FE0,0010) alone (PS3.5 8.2, and 8.2.16 for deflated frames);
    - Deflated Image Frame Compression holds any other pixel data, 1-bit too (PS3.5 8.2.16);
    - RLE holds samples of 8, 16 or 32 bits allocated (PS3.5 G);
    - every other codec takes 1 or 3 integer samples, at most 16 bits (what the server
      supports); JPEG baseline at most 8 bits, JPEG extended 12 bits grey and 8 bits colour;
    - lossy JPEG, JPEG-LS near-lossless and lossy JPEG XL refuse signed samples;
    - no lossy target takes palette colour indices.
    """
    if target in NATIVE:
        return []
    if pixels.floating:
        return [FLOAT]
    if target == DEFLATED_FRAMES:
        return []
    if target == RLE:
        return [] if pixels.bits_allocated in (8, 16, 32) else [ONE_BIT]
    if pixels.bits_allocated == 1:
        return [ONE_BIT]
    if pixels.samples not in (1, 3):
        return [NOT_COMPRESSIBLE]
    reasons: list[tuple[str, ...]] = []
    limit = 16
    if target == JPEG_BASELINE:
        limit = 8
    elif target == JPEG_EXTENDED:
        limit = 8 if pixels.samples == 3 else 12
    if pixels.bits_stored > limit:
        reasons.append(BITS)
    lossy = target in LOSSY_METHOD
    if pixels.signed and target in (JPEG_BASELINE, JPEG_EXTENDED, JPEG_LS_NEAR, JXL):
        reasons.append(SIGNED)
    if lossy and pixels.photometric == "PALETTE COLOR":
        reasons.append(PALETTE)
    return reasons


def test_the_rules_themselves() -> None:
    """Spot checks of `refusals` against the rules as the issue states them."""
    grey16s = PixelAttributes(1, 16, 16, True, "MONOCHROME2", False)
    rgb8 = PixelAttributes(3, 8, 8, False, "RGB", False)
    rgb16 = PixelAttributes(3, 16, 16, False, "RGB", False)
    assert refusals(grey16s, JPEG_BASELINE) == [BITS, SIGNED]
    assert refusals(grey16s, J2K) == [] and refusals(grey16s, JPEG_LS) == []
    assert refusals(grey16s, JPEG_LS_NEAR) == [SIGNED] and refusals(grey16s, JXL) == [SIGNED]
    assert refusals(rgb8, JPEG_BASELINE) == [] and refusals(rgb8, JPEG_EXTENDED) == []
    assert refusals(rgb16, JPEG_EXTENDED) == [BITS] and refusals(rgb16, JPEG_SV1) == []
    assert refusals(PixelAttributes(1, 16, 12, False, "MONOCHROME2", False), JPEG_EXTENDED) == []
    assert refusals(PixelAttributes(1, 8, 8, False, "PALETTE COLOR", False), J2K) == [PALETTE]
    float32 = PixelAttributes(1, 32, 32, False, "MONOCHROME2", True)
    assert refusals(float32, RLE) == refusals(float32, DEFLATED_FRAMES) == [FLOAT]
    assert refusals(float32, DEFLATED) == []
    assert refusals(PixelAttributes(1, 1, 1, False, "MONOCHROME2", False), RLE) == [ONE_BIT]
    assert refusals(PixelAttributes(1, 1, 1, False, "MONOCHROME2", False),
                    DEFLATED_FRAMES) == []


# -- Decoding what came back -------------------------------------------------------------------

# pydicom decoding plugins independent of the server's codecs (imagecodecs: libjpeg-turbo,
# CharLS, OpenJPEG, OpenJPH, libjxl; pylibjpeg-rle): libjpeg (Richter) for JPEG and JPEG-LS,
# OpenJPEG via pylibjpeg for JPEG 2000 and HTJ2K, pydicom's own RLE decoder.
PYDICOM_PLUGIN = {RLE: "pydicom", **{uid: "pylibjpeg" for uid in (
    JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS, JPEG_SV1, JPEG_LS, JPEG_LS_NEAR,
    J2K_LOSSLESS, J2K, HTJ2K_LOSSLESS, HTJ2K_RPCL, HTJ2K)}}


def native_dtype(ds: pydicom.Dataset) -> np.dtype:
    if "FloatPixelData" in ds:
        return np.dtype("<f4")
    if "DoubleFloatPixelData" in ds:
        return np.dtype("<f8")
    kind = "i" if int(ds.get("PixelRepresentation", 0)) == 1 else "u"
    return np.dtype(f"<{kind}{max(int(ds.BitsAllocated), 8) // 8}")


def native_frame(data: bytes, ds: pydicom.Dataset) -> np.ndarray:
    """Native little-endian frame bytes (PS3.5 8.1.1) as an array of the frame's shape."""
    rows, columns = int(ds.Rows), int(ds.Columns)
    samples = int(ds.get("SamplesPerPixel", 1))
    count = rows * columns * samples
    if int(ds.BitsAllocated) == 1:
        bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little", count=count)
        return bits.reshape(rows, columns)
    flat = np.frombuffer(data, native_dtype(ds), count=count)
    if samples == 1:
        return flat.reshape(rows, columns)
    if int(ds.get("PlanarConfiguration", 0)):
        return flat.reshape(samples, rows, columns).transpose(1, 2, 0)
    return flat.reshape(rows, columns, samples)


def sign_extend(array: np.ndarray, bits_stored: int) -> np.ndarray:
    """An unsigned Bits Stored bit pattern as the signed values it encodes."""
    values = array.astype(np.int64) & ((1 << bits_stored) - 1)
    return np.where(values >= 1 << (bits_stored - 1), values - (1 << bits_stored), values)


def encapsulated_frames(ds: pydicom.Dataset) -> list[bytes]:
    return list(generate_frames(ds.PixelData, number_of_frames=int(
        ds.get("NumberOfFrames", 1) or 1)))


def decode(ds: pydicom.Dataset, to_rgb: bool = True) -> np.ndarray:
    """The pixels of a retrieved instance, (frames, rows, columns[, 3]), colour as RGB (as
    coded with `to_rgb` False)."""
    ts = str(ds.file_meta.TransferSyntaxUID)
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    bits_stored = int(ds.get("BitsStored", ds.BitsAllocated))
    if ts in (JXL_LOSSLESS, JXL):
        frames = [np.asarray(imagecodecs.jpegxl_decode(f)) for f in encapsulated_frames(ds)]
        array = np.stack(frames)
        if signed:
            array = sign_extend(array, bits_stored)
    elif ts == DEFLATED_FRAMES:
        array = np.stack([native_frame(zlib.decompress(f, -zlib.MAX_WBITS), ds)
                          for f in encapsulated_frames(ds)])
    else:
        with quietly():
            array = pixel_array(ds, as_rgb=False, decoding_plugin=PYDICOM_PLUGIN.get(ts, ""))
    array = as_frames(array, ds)
    if to_rgb and str(ds.PhotometricInterpretation) in ("YBR_FULL", "YBR_FULL_422"):
        # decoded samples are still YCbCr (libjpeg leaves them with as_rgb=False; JPEG
        # lossless, JPEG-LS and untransformed JPEG 2000 carry them as coded)
        array = np.stack([convert_color_space(f, "YBR_FULL", "RGB") for f in array])
    return array


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def luma(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]


def assert_equal_frames(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert got.shape == expected.shape, (what, got.shape, expected.shape)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        if not np.array_equal(g, e):
            diff = np.abs(g.astype(np.float64) - e.astype(np.float64))
            pytest.fail(f"{what}: frame {i + 1} differs at {int((diff > 0).sum())} samples, "
                        f"max {diff.max()}, rmse {rmse(g, e):.3f}")


def wavelet_aim(bits_stored: int) -> float:
    return min(max(2.0 ** (bits_stored - 10), 0.5), 4.0)


def fetch_instance(server: LiveServer, source: Source, target: str) -> requests.Response:
    return get(server.dicomweb + source.path,
               f'multipart/related; type="{DICOM}"; transfer-syntax={target}')


def server_baseline(server: LiveServer, source: Source) -> np.ndarray:
    """The lossy source as the server decodes it (its Explicit VR Little Endian transcode),
    checked against pydicom's independent decoding; what lossless targets must reproduce."""
    if source.baseline is None:
        response = fetch_instance(server, source, EXPLICIT)
        assert response.status_code == 200, response.text[:300]
        [(_headers, body)] = parse_multipart(response)
        with quietly():
            ds = pydicom.dcmread(BytesIO(body))
        baseline = decode(ds)
        assert baseline.shape == source.reference.shape
        assert rmse(baseline, source.reference) <= DECODER_RMSE
        assert np.abs(baseline.astype(np.float64) - source.reference).max() \
            <= DECODER_MAX_ERROR
        source.baseline = baseline
    return source.baseline


def expected_photometrics(source: Source, target: str) -> set[str]:
    if source.samples == 1:
        return {source.photometric}
    if target in JPEG_LOSSY:
        return {"YBR_FULL_422"}
    allowed = {"RGB", "YBR_FULL"}
    if target in WAVELET_PHOTOMETRIC:
        allowed.add(WAVELET_PHOTOMETRIC[target])
    if target in NATIVE and source.photometric == "YBR_FULL_422" and source.ts in NATIVE:
        allowed.add("YBR_FULL_422")  # native frames kept as they are
    return allowed


def values(ds: pydicom.Dataset, keyword: str) -> list[object]:
    value = ds[keyword].value
    return list(value) if isinstance(value, MultiValue | list) else [value]


def check_attributes(source: Source, ds: pydicom.Dataset, target: str) -> None:
    for keyword in ("SOPInstanceUID", "Rows", "Columns", "SamplesPerPixel", "BitsAllocated"):
        assert ds.get(keyword) == source.ds.get(keyword), keyword
    assert int(ds.get("NumberOfFrames", 1) or 1) == source.frames
    assert str(ds.PhotometricInterpretation) in expected_photometrics(source, target), \
        ds.PhotometricInterpretation
    if source.samples == 3 and target not in NATIVE and target not in (RLE, DEFLATED_FRAMES):
        assert int(ds.get("PlanarConfiguration", 0)) == 0  # PS3.5 8.2: interleaved
    if target in LOSSY_METHOD:
        assert ds.get("LossyImageCompression") == "01"
        # the latest step last; earlier ones kept (some corpus files have a ratio and no method)
        methods = values(ds, "LossyImageCompressionMethod")
        assert methods[-1] == LOSSY_METHOD[target], methods
        ratios = values(ds, "LossyImageCompressionRatio")
        assert len(ratios) >= len(methods) and float(str(ratios[-1])) > 0
    elif source.ds.get("LossyImageCompression") == "01":
        assert ds.get("LossyImageCompression") == "01"  # never reset (PS3.3 C.7.6.1.1.5)
    else:
        assert ds.get("LossyImageCompression", "00") == "00"


def check_pixels(server: LiveServer, source: Source, ds: pydicom.Dataset,
                 target: str) -> None:
    got = decode(ds)
    reference = server_baseline(server, source) if source.stored_lossily else source.reference
    if target not in LOSSY_METHOD:
        assert_equal_frames(got, reference, f"{source.name} in {TARGETS[target]}")
        return
    if target == JPEG_LS_NEAR:
        if str(ds.PhotometricInterpretation) == "YBR_FULL" and not source.stored_lossily:
            # the error bound holds for the samples as coded: compare YCbCr with YCbCr
            got = decode(ds, to_rgb=False)
            with quietly():
                reference = as_frames(pixel_array(source.ds, as_rgb=False), source.ds)
        difference = np.abs(got.astype(np.float64) - reference.astype(np.float64))
        assert difference.max() <= NEAR_LOSSLESS_MAX_ERROR, difference.max()
        return
    scale = 2.0 ** source.bits_stored
    error = rmse(got, reference)
    if source.samples == 3:
        assert error <= COLOUR_RMSE_FRACTION * scale, (error, scale)
        error = rmse(luma(got), luma(reference))
    assert error <= LOSSY_RMSE_FRACTION * scale, (error, scale)
    if target in WAVELET_LOSSY:
        assert rmse(got, reference) <= WAVELET_AIM_SLACK * wavelet_aim(source.bits_stored), \
            (rmse(got, reference), wavelet_aim(source.bits_stored))


# -- The matrix --------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [pytest.param(uid, id=name) for uid, name in TARGETS.items()])
@pytest.mark.parametrize("name", SOURCES)
def test_transcode(sources: dict[str, Source], shared_server: LiveServer, name: str,
                   target: str) -> None:
    source = sources[name]
    response = fetch_instance(shared_server, source, target)
    expected_refusals = [OFF_THE_WEB] if target == IMPLICIT else \
        [] if target == source.ts else refusals(attributes(source), target)
    if expected_refusals:
        assert response.status_code == 406, (
            f"{name} cannot be sent in {target} (reason: any of {expected_refusals}), yet the "
            f"answer is {response.status_code} {response.headers['content-type']}")
        message = assert_error(response, 406).lower()
        assert target in message
        assert any(word in message for words in expected_refusals for word in words), (
            f"the reason should name any of {expected_refusals}: {message}")
        return
    assert response.status_code == 200, response.text[:500]
    media, params = media_params(response.headers["content-type"])
    assert (media, params["type"]) == ("multipart/related", DICOM)
    [(headers, body)] = parse_multipart(response)
    assert media_params(headers["content-type"]) == (DICOM, {"transfer-syntax": target})
    if target == source.ts:
        assert body == source.data  # as stored
        return
    with quietly():
        ds = pydicom.dcmread(BytesIO(body))
    assert ds.file_meta.TransferSyntaxUID == target
    check_attributes(source, ds, target)
    check_pixels(shared_server, source, ds, target)


def test_every_source_was_stored_distinctly(sources: dict[str, Source]) -> None:
    assert len({s.ds.SOPInstanceUID for s in sources.values()}) == len(SOURCES)


@pytest.mark.parametrize("target", [EXPLICIT, J2K_LOSSLESS, JPEG_LS, RLE, JXL_LOSSLESS],
                         ids=TARGETS.get)
@pytest.mark.parametrize("name", ["CT_small.dcm", "examples_rgb_color.dcm"])
def test_single_part_instance(sources: dict[str, Source], shared_server: LiveServer,
                              name: str, target: str) -> None:
    source = sources[name]
    response = get(shared_server.dicomweb + source.path, f"{DICOM}; transfer-syntax={target}")
    assert response.status_code == 200, response.text[:300]
    assert media_params(response.headers["content-type"]) == (DICOM, {"transfer-syntax": target})
    ds = pydicom.dcmread(BytesIO(response.content))
    assert ds.file_meta.TransferSyntaxUID == target
    assert_equal_frames(decode(ds), source.reference, f"{name} single part")


def test_single_part_impossible_is_406(sources: dict[str, Source],
                                       shared_server: LiveServer) -> None:
    source = sources["CT_small.dcm"]
    response = get(shared_server.dicomweb + source.path, f"{DICOM}; transfer-syntax={JXL}")
    assert "signed" in assert_error(response, 406)


# -- Series level and dicomweb-client ----------------------------------------------------------


@pytest.fixture(scope="module")
def series(shared_server: LiveServer) -> list[pydicom.Dataset]:
    files = ct_series(3, size=48, patient="TRANSCODE^SERIES")
    store(shared_server, files)
    return [pydicom.dcmread(BytesIO(data)) for data in files]


@pytest.mark.parametrize("target", [J2K_LOSSLESS, HTJ2K_LOSSLESS, RLE, DEFLATED],
                         ids=TARGETS.get)
def test_series_in_a_target_syntax(series: list[pydicom.Dataset], shared_server: LiveServer,
                                   target: str) -> None:
    first = series[0]
    url = (f"{shared_server.dicomweb}/studies/{first.StudyInstanceUID}"
           f"/series/{first.SeriesInstanceUID}")
    response = get(url, f'multipart/related; type="{DICOM}"; transfer-syntax={target}')
    assert response.status_code == 200, response.text[:300]
    media, params = media_params(response.headers["content-type"])
    assert (media, params["type"]) == ("multipart/related", DICOM)
    assert params.get("transfer-syntax", target) == target
    parts = parse_multipart(response)
    assert len(parts) == len(series)
    by_sop = {ds.SOPInstanceUID: ds for ds in series}
    for headers, body in parts:
        assert media_params(headers["content-type"]) == (DICOM, {"transfer-syntax": target})
        ds = pydicom.dcmread(BytesIO(body))
        assert ds.file_meta.TransferSyntaxUID == target
        assert headers["content-location"].endswith(f"/instances/{ds.SOPInstanceUID}")
        original = by_sop.pop(ds.SOPInstanceUID)
        assert_equal_frames(decode(ds), as_frames(original.pixel_array, original), "series")
    assert not by_sop


def test_series_in_an_impossible_syntax_is_406(series: list[pydicom.Dataset],
                                               shared_server: LiveServer) -> None:
    first = series[0]
    url = (f"{shared_server.dicomweb}/studies/{first.StudyInstanceUID}"
           f"/series/{first.SeriesInstanceUID}")
    response = get(url, f'multipart/related; type="{DICOM}"; transfer-syntax={JPEG_BASELINE}')
    assert JPEG_BASELINE in assert_error(response, 406)


@pytest.mark.parametrize("name", ["CT_small.dcm", "examples_rgb_color.dcm",
                                  "examples_ybr_color.dcm"])
def test_dicomweb_client_retrieve_instance_in_jpeg_2000(sources: dict[str, Source],
                                                        shared_server: LiveServer,
                                                        name: str) -> None:
    source = sources[name]
    client = DICOMwebClient(shared_server.dicomweb)
    ds = client.retrieve_instance(source.ds.StudyInstanceUID, source.ds.SeriesInstanceUID,
                                  source.ds.SOPInstanceUID,
                                  media_types=((DICOM, J2K_LOSSLESS),))
    assert isinstance(ds, pydicom.Dataset)
    assert ds.file_meta.TransferSyntaxUID == J2K_LOSSLESS
    expected = server_baseline(shared_server, source) if source.stored_lossily \
        else source.reference
    assert_equal_frames(decode(ds), expected, f"{name} via dicomweb-client")
