"""storage.ingest.read_instance over pydicom's bundled files, checked against pydicom itself.

For every file: the pixel data span holds exactly pydicom's PixelData, the frame spans hold
exactly pydicom's frames, every bulk span holds exactly the element's value (nested ones
too), and the metadata JSON equals pydicom's DICOM JSON for everything that is not bulk data.
"""

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson
import pydicom
import pytest
from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.encaps import generate_frames
from pydicom.uid import generate_uid

from storage.ingest import IngestError, IngestRecord, Span, read_instance
from tests.dataset_factories import CORPUS, corpus_path, ct_series

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# More shapes than the server corpus: 32-bit RLE, near-lossless JPEG-LS, JPEG 2000 with many
# frames, multi-frame RLE dose, JPEG extended 12-bit, deflate, nested private sequences.
EXTRA = (
    "SC_rgb_rle_32bit_2frame.dcm",
    "JPEGLSNearLossless_08.dcm",
    "examples_jpeg2k.dcm",
    "rtdose_rle.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "JPGExtended.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "SC_jpeg_no_color_transform.dcm",
    "rtstruct.dcm",
    "nested_priv_SQ.dcm",
    "priv_SQ.dcm",
    "reportsi.dcm",
    "ExplVR_BigEnd.dcm",
)


def _available(names: tuple[str, ...]) -> list[str]:
    """Names whose files ship with this pydicom (never downloaded)."""
    return [n for n in names if pydicom.data.get_testdata_file(n, download=False) is not None]


FILES = [*CORPUS, *_available(EXTRA)]


def _read(path: Path) -> IngestRecord:
    with open(path, "rb") as fp:
        return read_instance(fp)


def _span_bytes(data: bytes, spans: tuple[Span, ...] | list[Span]) -> bytes:
    return b"".join(data[s.offset:s.offset + s.length] for s in spans)


def _raw_value(ds: Dataset, tag: int) -> Any:
    """The element's value as read from the file (raw bytes if pydicom has not converted it)."""
    raw = ds.get_item(tag)
    return raw.value if isinstance(raw, RawDataElement) else ds[tag].value


def _resolve(ds: Dataset, path: str) -> Any:
    """The raw value at a bulk data path ("7FE00010", "00540016/0/00181078")."""
    pieces = path.split("/")
    for seq_tag, item in zip(pieces[:-1:2], pieces[1:-1:2], strict=True):
        ds = ds[int(seq_tag, 16)].value[int(item)]
    return _raw_value(ds, int(pieces[-1], 16))


def _expected_frames(ds: Dataset) -> list[bytes]:
    count = int(ds.get("NumberOfFrames", 1) or 1)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        return list(generate_frames(ds.PixelData, number_of_frames=count))
    size = len(ds.PixelData) // count
    return [ds.PixelData[i * size:(i + 1) * size] for i in range(count)]


@pytest.mark.parametrize("name", FILES)
def test_pixel_data_span_and_frames_match_pydicom(name: str) -> None:
    path = corpus_path(name)
    data = path.read_bytes()
    record = _read(path)
    ds = pydicom.dcmread(path)
    assert record.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID
    if "PixelData" not in ds:
        assert record.frames == ()
        assert "7FE00010" not in record.bulk
        return
    assert _span_bytes(data, [record.bulk["7FE00010"]]) == ds.PixelData
    frames = [_span_bytes(data, spans) for spans in record.frames]
    assert frames == _expected_frames(ds)


@pytest.mark.parametrize("name", FILES)
def test_every_bulk_span_holds_the_element_value(name: str) -> None:
    path = corpus_path(name)
    data = path.read_bytes()
    record = _read(path)
    ds = pydicom.dcmread(path)
    for bulk_path, span in record.bulk.items():
        value = _resolve(ds, bulk_path)
        assert isinstance(value, bytes), bulk_path
        assert _span_bytes(data, [span]) == value, bulk_path


def _bulk_paths(ds: Dataset, prefix: str = "") -> Iterator[str]:
    for elem in ds:
        key = f"{prefix}{elem.tag:08X}"
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                yield from _bulk_paths(item, f"{key}/{i}/")
        elif elem.VR in ("OB", "OW", "UN") and elem.value:
            yield key


@pytest.mark.parametrize("name", FILES)
def test_every_ob_ow_element_has_a_bulk_data_uri(name: str) -> None:
    path = corpus_path(name)
    record = _read(path)
    ds = pydicom.dcmread(path)
    assert set(_bulk_paths(ds)) <= set(record.bulk)


def _compare(metadata: dict[str, Any], ds: Dataset, where: str,
             bulk: dict[str, Span], uri_base: str) -> int:
    """Assert `metadata` (one dataset's DICOM JSON) equals pydicom's for `ds`; returns how many
    elements were compared."""
    assert set(metadata) == {f"{e.tag:08X}" for e in ds}, where
    compared = 0
    for elem in ds:
        key = f"{elem.tag:08X}"
        got = metadata[key]
        path = f"{where}{key}"
        if "BulkDataURI" in got:
            assert got["vr"] == elem.VR or elem.tag == 0x7FE00010, path
            assert got["BulkDataURI"] == f"{uri_base}/bulkdata/{path}"
            assert path in bulk
        elif elem.VR == "SQ":
            assert got["vr"] == "SQ"
            items = got.get("Value", [])
            assert len(items) == len(elem.value), path
            for i, (item_json, item) in enumerate(zip(items, elem.value, strict=True)):
                compared += _compare(item_json, item, f"{path}/{i}/", bulk, uri_base)
        else:
            assert got == elem.to_json_dict(None, 0xFFFFFFFF), path
        compared += 1
    return compared


@pytest.mark.parametrize("name", FILES)
def test_metadata_equals_pydicom_json_for_non_bulk_elements(name: str) -> None:
    path = corpus_path(name)
    record = _read(path)
    ds = pydicom.dcmread(path)
    metadata = orjson.loads(record.metadata)
    assert metadata == record.attributes
    assert list(metadata) == sorted(metadata)
    uri_base = (f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                f"/instances/{ds.SOPInstanceUID}")
    meta_keys = {f"{e.tag:08X}" for e in ds.file_meta}
    file_meta = {k: v for k, v in metadata.items() if k in meta_keys}
    body = {k: v for k, v in metadata.items() if k not in meta_keys}
    for elem in ds.file_meta:
        assert file_meta[f"{elem.tag:08X}"] == elem.to_json_dict(None, 0xFFFFFFFF)
    assert _compare(body, ds, "", record.bulk, uri_base) > 5
    assert (record.study_uid, record.series_uid, record.sop_uid, record.sop_class_uid) == (
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.SOPClassUID)


def _generated(**changes: str | None) -> bytes:
    """A small generated CT with `changes` applied (None deletes the attribute)."""
    ds = pydicom.dcmread(BytesIO(ct_series(1, size=8)[0]))
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    out = BytesIO()
    ds.save_as(out)
    return out.getvalue()


def test_a_generated_instance_reads() -> None:
    record = read_instance(BytesIO(_generated()))
    assert len(record.frames) == 1
    assert record.frames[0][0].length == 8 * 8 * 2


@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                                     "SOPClassUID"])
def test_missing_uid_raises(keyword: str) -> None:
    with pytest.raises(IngestError, match=f"missing {keyword}"):
        read_instance(BytesIO(_generated(**{keyword: None})))


@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                                     "SOPClassUID"])
@pytest.mark.parametrize("value", ["1.2.abc", "1..2", "1.2.", "1" * 65, "1.2 3", "../../etc"])
def test_invalid_uid_raises(keyword: str, value: str) -> None:
    with pytest.raises(IngestError, match=f"invalid {keyword}"):
        read_instance(BytesIO(_generated(**{keyword: value})))


def test_a_64_character_uid_is_accepted() -> None:
    uid = "1." + "2" * 62
    assert len(uid) == 64
    assert read_instance(BytesIO(_generated(SOPInstanceUID=uid))).sop_uid == uid


def test_invalid_uid_error_names_the_sop_instance_when_known() -> None:
    sop = generate_uid()
    with pytest.raises(IngestError) as caught:
        read_instance(BytesIO(_generated(StudyInstanceUID="not-a-uid", SOPInstanceUID=sop)))
    assert caught.value.sop_instance_uid == sop
    assert caught.value.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"


@pytest.mark.parametrize("data", [b"", b"garbage", b"\0" * 128 + b"DICM", b"\0" * 132,
                                  b"\0" * 128 + b"DICM" + b"\x02\x00"])
def test_not_dicom_raises(data: bytes) -> None:
    with pytest.raises(IngestError):
        read_instance(BytesIO(data))


def test_truncated_file_raises_or_reads_a_consistent_record() -> None:
    """A file cut inside the encapsulated pixel data cannot be archived."""
    data = corpus_path("SC_rgb_rle_2frame.dcm").read_bytes()
    with pytest.raises(IngestError):
        read_instance(BytesIO(data[:-100]))


def test_file_without_meta_raises() -> None:
    with pytest.raises(IngestError):
        _read(corpus_path("no_meta.dcm"))
