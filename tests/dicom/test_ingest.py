"""pacs.dicom.ingest.read_instance over pydicom's bundled files, checked against pydicom itself.

For every file: the pixel data span holds exactly pydicom's PixelData, the frame spans hold
exactly pydicom's frames, every bulk span holds exactly the element's value (nested ones
too), and the metadata JSON equals pydicom's DICOM JSON for everything that is not bulk data.
"""

import functools
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import orjson
import pydicom
import pytest
from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.encaps import generate_frames
from pydicom.uid import ImplicitVRLittleEndian, generate_uid

from pacs.dicom.bulk_data import GOOGLE_BULK_DATA
from pacs.dicom.ingest import IngestError, read_instance
from storage.rows import InstanceRecord, Span
from tests.dataset_factories import CORPUS, corpus_path, ct_series, edited

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# More shapes than the server corpus: 32-bit RLE, near-lossless JPEG-LS, JPEG 2000 with many
# frames, multi-frame RLE dose, JPEG extended 12-bit, implicit VR private sequences, SR, big
# endian (files missing file meta or UIDs get them added, see _file_bytes).
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
# Data Set Trailing Padding follows the pixel data, which ingest never parses; it carries no
# information (PS3.10 7.2), so it is not metadata.
TRAILING_PADDING = 0xFFFCFFFC


# Files that ship without the UIDs an archive needs get fixed ones (and file meta) added.
_FILLED_UIDS = {
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.1",
    "SeriesInstanceUID": "1.2.826.0.1.3680043.8.498.1.1",
    "SOPInstanceUID": "1.2.826.0.1.3680043.8.498.1.1.1",
    "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7",
}


@functools.cache
def _file_bytes(name: str) -> bytes:
    """The file's own bytes, or, if it lacks file meta or required UIDs, pydicom's re-encoding
    of it with them added (in its own transfer syntax)."""
    path = corpus_path(name)
    ds = pydicom.dcmread(path, force=True)
    missing = [k for k in _FILLED_UIDS if k not in ds]
    if not missing and "TransferSyntaxUID" in ds.file_meta:
        return path.read_bytes()
    for keyword in missing:
        setattr(ds, keyword, _FILLED_UIDS[keyword])
    ds.file_meta.TransferSyntaxUID = ds.file_meta.get("TransferSyntaxUID", ImplicitVRLittleEndian)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _read(data: bytes) -> InstanceRecord:
    return read_instance(BytesIO(data), GOOGLE_BULK_DATA)


def _load(name: str) -> tuple[bytes, InstanceRecord, Dataset]:
    """The bytes, ingest's record of them and pydicom's full reading of them."""
    data = _file_bytes(name)
    return data, _read(data), pydicom.dcmread(BytesIO(data))


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
    data, record, ds = _load(name)
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
    data, record, ds = _load(name)
    for bulk_path, span in record.bulk.items():
        value = _resolve(ds, bulk_path)
        assert isinstance(value, bytes), bulk_path
        assert _span_bytes(data, [span]) == value, bulk_path


def test_nested_bulk_data_has_spans() -> None:
    """Waveform samples live inside WaveformSequence items; their spans are recorded too."""
    data, record, ds = _load("waveform_ecg.dcm")
    nested = [p for p in record.bulk if "/" in p]
    assert "54000100/0/54001010" in nested
    for path in nested:
        assert _span_bytes(data, [record.bulk[path]]) == _resolve(ds, path)


def _bulk_paths(ds: Dataset, prefix: str = "") -> Iterator[str]:
    for elem in ds:
        key = f"{prefix}{elem.tag:08X}"
        if elem.tag == TRAILING_PADDING:
            continue
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                yield from _bulk_paths(item, f"{key}/{i}/")
        elif elem.VR in ("OB", "OW", "UN") and elem.value:
            yield key


@pytest.mark.parametrize("name", FILES)
def test_every_ob_ow_element_has_a_bulk_data_uri(name: str) -> None:
    _data, record, ds = _load(name)
    assert set(_bulk_paths(ds)) <= set(record.bulk)


def _compare(metadata: dict[str, Any], ds: Dataset, where: str,
             bulk: dict[str, Span]) -> int:
    """Assert `metadata` (one dataset's DICOM JSON) equals pydicom's for `ds`, less group
    lengths (PS3.18 F.2); returns how many elements were compared."""
    elements = [e for e in ds if e.tag != TRAILING_PADDING and e.tag.element]
    assert set(metadata) == {f"{e.tag:08X}" for e in elements}, where
    compared = 0
    for elem in elements:
        key = f"{elem.tag:08X}"
        got = metadata[key]
        path = f"{where}{key}"
        if "BulkDataURI" in got:
            assert got["vr"] == elem.VR or elem.tag == 0x7FE00010, path
            assert got["BulkDataURI"] == path  # the attribute path; answers make it a URL
            assert path in bulk
        elif elem.VR == "SQ":
            assert got["vr"] == "SQ"
            items = got.get("Value", [])
            assert len(items) == len(elem.value), path
            for i, (item_json, item) in enumerate(zip(items, elem.value, strict=True)):
                compared += _compare(item_json, item, f"{path}/{i}/", bulk)
        else:
            assert got == elem.to_json_dict(None, 0xFFFFFFFF), path
        compared += 1
    return compared


@pytest.mark.parametrize("name", FILES)
def test_metadata_equals_pydicom_json_for_non_bulk_elements(name: str) -> None:
    _data, record, ds = _load(name)
    metadata = orjson.loads(record.metadata)
    assert metadata == record.attributes
    assert list(metadata) == sorted(metadata)
    meta_keys = {f"{e.tag:08X}" for e in ds.file_meta}
    file_meta = {k: v for k, v in metadata.items() if k in meta_keys}
    body = {k: v for k, v in metadata.items() if k not in meta_keys}
    assert "00020000" not in file_meta
    for elem in ds.file_meta:
        if elem.tag.element:
            assert file_meta[f"{elem.tag:08X}"] == elem.to_json_dict(None, 0xFFFFFFFF)
    assert _compare(body, ds, "", record.bulk) > 5
    assert (record.study_uid, record.series_uid, record.sop_uid, record.sop_class_uid) == (
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.SOPClassUID)


def _generated(**changes: str | None) -> bytes:
    """A small generated CT with `changes` applied (None deletes the attribute)."""
    return edited(ct_series(1, size=8)[0], **changes)


def test_a_generated_instance_reads() -> None:
    record = _read(_generated())
    assert len(record.frames) == 1
    assert record.frames[0][0].length == 8 * 8 * 2


@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                                     "SOPClassUID"])
def test_missing_uid_raises(keyword: str) -> None:
    with pytest.raises(IngestError, match=f"missing {keyword}"):
        _read(_generated(**{keyword: None}))


@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                                     "SOPClassUID"])
@pytest.mark.parametrize("value", ["1.2.abc", "1..2", "1.2.", "1" * 65, "1.2 3", "../../etc"])
def test_invalid_uid_raises(keyword: str, value: str) -> None:
    with pytest.raises(IngestError, match=f"invalid {keyword}"):
        _read(_generated(**{keyword: value}))


def test_a_64_character_uid_is_accepted() -> None:
    uid = "1." + "2" * 62
    assert len(uid) == 64
    assert _read(_generated(SOPInstanceUID=uid)).sop_uid == uid


def test_invalid_uid_error_names_the_sop_instance_when_known() -> None:
    sop = generate_uid()
    with pytest.raises(IngestError) as caught:
        _read(_generated(StudyInstanceUID="not-a-uid", SOPInstanceUID=sop))
    assert caught.value.sop_instance_uid == sop
    assert caught.value.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"


@pytest.mark.parametrize("data", [b"", b"garbage", b"\0" * 128 + b"DICM", b"\0" * 132,
                                  b"\0" * 128 + b"DICM" + b"\x02\x00"])
def test_not_dicom_raises(data: bytes) -> None:
    with pytest.raises(IngestError):
        _read(data)


def test_encapsulated_pixel_data_cut_short_raises() -> None:
    """A file cut inside the encapsulated pixel data cannot be archived."""
    data = corpus_path("SC_rgb_rle_2frame.dcm").read_bytes()
    with pytest.raises(IngestError):
        _read(data[:-100])


@pytest.mark.parametrize(("name", "error"), [
    ("no_meta.dcm", "not a readable DICOM"),
    ("rtstruct.dcm", "not a readable DICOM"),  # no preamble, no file meta
    ("JPEGLSNearLossless_08.dcm", "missing StudyInstanceUID"),
    ("priv_SQ.dcm", "missing StudyInstanceUID"),
])
def test_bundled_files_an_archive_cannot_keep_raise(name: str, error: str) -> None:
    if pydicom.data.get_testdata_file(name, download=False) is None:
        pytest.skip(f"{name} does not ship with this pydicom")
    with open(corpus_path(name), "rb") as fp, pytest.raises(IngestError, match=error):
        read_instance(fp, GOOGLE_BULK_DATA)


def test_deflated_file_metadata_matches_pydicom_except_pixel_data() -> None:
    """Deflated bodies have no file offsets: the header is indexed, pixel data is not spanned."""
    data, record, ds = _load("image_dfl.dcm")
    assert record.transfer_syntax_uid == "1.2.840.10008.1.2.1.99"
    assert record.frames == ()
    assert record.bulk == {}
    del ds.PixelData
    metadata = orjson.loads(record.metadata)
    meta_keys = {f"{e.tag:08X}" for e in ds.file_meta}
    body = {k: v for k, v in metadata.items() if k not in meta_keys}
    assert _compare(body, ds, "", record.bulk) > 5


def _encoded(ds: Dataset, implicit: bool = False) -> bytes:
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit \
        else "1.2.840.10008.1.2.1"
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_known_tag_encoded_as_un_is_not_bulk_data() -> None:
    """pydicom reads an explicit UN of a dictionary tag with the dictionary's VR; so does
    ingest (rtdose_rle.dcm has InstanceCreationDate as UN)."""
    ds = pydicom.dcmread(BytesIO(ct_series(1, size=8)[0]))
    ds.InstanceCreationDate = "20030903"
    as_da = b"\x08\x00\x12\x00DA\x08\x0020030903"
    as_un = b"\x08\x00\x12\x00UN\x00\x00\x08\x00\x00\x0020030903"
    data = _encoded(ds)
    assert data.count(as_da) == 1  # pydicom itself never writes a known tag as UN
    record = _read(data.replace(as_da, as_un))
    assert record.attributes["00080012"] == {"vr": "DA", "Value": ["20030903"]}
    assert "00080012" not in record.bulk


def test_implicit_vr_private_creator_is_lo_and_unknown_private_is_bulk() -> None:
    ds = pydicom.dcmread(BytesIO(ct_series(1, size=8)[0]))
    block = ds.private_block(0x0011, "TEST CREATOR", create=True)
    block.add_new(0x01, "OB", b"\x01\x02\x03\x04")
    data = _encoded(ds, implicit=True)
    record = _read(data)
    assert record.attributes["00110010"] == {"vr": "LO", "Value": ["TEST CREATOR"]}
    assert record.attributes["00111001"]["vr"] == "UN"
    assert _span_bytes(data, [record.bulk["00111001"]]) == b"\x01\x02\x03\x04"


def test_large_header_values_get_exact_spans_top_level_and_nested() -> None:
    """Values over the deferred-read size are located without being read; spans stay exact."""
    ds = pydicom.dcmread(BytesIO(ct_series(1, size=8)[0]))
    big = bytes(range(256)) * 400  # 100 KiB
    block = ds.private_block(0x0011, "TEST CREATOR", create=True)
    block.add_new(0x01, "OB", big)
    item = Dataset()
    item.add_new(0x00111001, "OB", big[::-1])
    item.add_new(0x00110010, "LO", "TEST CREATOR")
    block.add_new(0x02, "SQ", [item])
    data = _encoded(ds)
    record = _read(data)
    assert _span_bytes(data, [record.bulk["00111001"]]) == big
    assert _span_bytes(data, [record.bulk["00111002/0/00111001"]]) == big[::-1]
