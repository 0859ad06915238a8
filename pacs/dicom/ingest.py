"""Ingest: read a Part 10 file's header once and derive everything the archive serves from it.

The result is a pure value: the DICOM JSON model (PS3.18 Annex F) in which each bulk data
element's BulkDataURI is its attribute path (answers make it a URL), the byte span of every
bulk data element, and the byte spans of every frame's pixel data (native or encapsulated,
PS3.5 A.4), so that metadata is never re-parsed and a frame is one seek.
"""

import base64
import struct
from collections.abc import Iterator
from typing import Any, BinaryIO

import orjson
from pydicom import Dataset, dcmread
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.hooks import hooks

from pacs.dicom.bulk_data import BulkDataDefinition
from pacs.dicom.json_values import ENCODINGS, MAX_SEQUENCE_DEPTH, raw_json
from pacs.dicom.pixel_data import (
    BITS_ALLOCATED,
    EXTENDED_OFFSET_TABLE,
    ITEM,
    PIXEL_BY_TAG,
    PIXEL_VRS,
    SAMPLES_PER_PIXEL,
    SEQUENCE_DELIMITER,
    UNDEFINED_LENGTH,
    native_frame_bits,
)
from pacs.dicom.tags import REQUIRED_UIDS, SPECIFIC_CHARACTER_SET
from pacs.dicom.transfer_syntaxes import syntax_of
from pacs.dicom.uids import is_valid_uid
from storage.rows import InstanceRecord, Span

DEFER_BYTES = 64 * 1024  # header values larger than this are located, not read
PREAMBLE = b"\0" * 128 + b"DICM"  # PS3.10 7.1
_LONG_HEADER_VRS = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UT", b"UN",
                              b"UC", b"UR", b"SV", b"UV"})
# Frame start markers used when neither offset table nor fragment count tells frames apart.
_FRAME_START_MARKERS = (b"\xff\xd8", b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0cjP")


class IngestError(ValueError):
    """The file cannot be archived; `sop_class_uid`/`sop_instance_uid` are set when known."""

    def __init__(self, message: str, sop_class_uid: str = "", sop_instance_uid: str = "") -> None:
        super().__init__(message, sop_class_uid, sop_instance_uid)  # all three survive pickling
        self.message = message
        self.sop_class_uid = sop_class_uid
        self.sop_instance_uid = sop_instance_uid

    def __str__(self) -> str:
        return self.message


def part10_head(fp: BinaryIO) -> tuple[bytes, int] | None:
    """For a body that starts with the File Meta group but has no preamble and no 'DICM'
    (what pydicom's `dcmwrite` writes for a dataset built in memory, and dicomweb-client
    sends), the bytes a Part 10 file (PS3.10 7.1) starts with instead, and where the dataset
    starts in `fp`; None if `fp` is Part 10 already. The File Meta group is rewritten with
    its group length, and the Media Storage UIDs are taken from the dataset when absent.
    IngestError when the body has no File Meta group or it names no transfer syntax."""
    fp.seek(0)
    if fp.read(132)[128:] == b"DICM":
        return None
    end = _file_meta_end(fp)
    if end == 0:
        raise IngestError("not a DICOM Part 10 file: it has no File Meta Information "
                          "(PS3.10 7.1), starting neither with the 128-byte preamble and "
                          "'DICM' nor with a (0002,xxxx) group")
    fp.seek(0)
    try:
        ds = dcmread(fp, force=True, stop_before_pixels=True, defer_size=DEFER_BYTES)
    except (InvalidDicomError, EOFError, struct.error, ValueError, KeyError, TypeError) as exc:
        raise IngestError(f"not a readable DICOM file: {exc}") from exc
    meta = ds.file_meta
    if not str(meta.get("TransferSyntaxUID", "")).strip():
        raise IngestError("the File Meta Information has no TransferSyntaxUID (0002,0010)")
    for meta_keyword, keyword in (("MediaStorageSOPClassUID", "SOPClassUID"),
                                  ("MediaStorageSOPInstanceUID", "SOPInstanceUID")):
        if not str(meta.get(meta_keyword, "")).strip() and keyword in ds:
            setattr(meta, meta_keyword, ds[keyword].value)
    out = DicomBytesIO()
    try:
        write_file_meta_info(out, meta, enforce_standard=True)
    except (ValueError, AttributeError) as exc:
        raise IngestError(f"the File Meta Information is incomplete: {exc}") from exc
    return PREAMBLE + out.getvalue(), end


def data_set_start(fp: BinaryIO) -> int:
    """Where the data set of the Part 10 file `fp` starts: after its preamble, 'DICM' and
    File Meta group (PS3.10 7.1); IngestError if `fp` is not a Part 10 file."""
    fp.seek(0)
    if fp.read(132)[128:] != b"DICM":
        raise IngestError("not a DICOM Part 10 file: no preamble and 'DICM'")
    return _file_meta_end(fp, 132)


def _file_meta_end(fp: BinaryIO, start: int = 0) -> int:
    """Where the (0002,xxxx) elements from `start` in `fp` end (explicit VR little endian,
    PS3.10 7.1); `start` if there is none."""
    fp.seek(start)
    end = start
    while True:
        head = fp.read(8)
        if len(head) < 8 or struct.unpack("<H", head[:2])[0] != 0x0002:
            return end
        if head[4:6] in _LONG_HEADER_VRS:
            extra = fp.read(4)
            if len(extra) < 4:
                return end
            header, (length,) = 12, struct.unpack("<L", extra)
        else:
            header, (length,) = 8, struct.unpack("<H", head[6:8])
        end += header + length
        fp.seek(end)


def is_io_error(exc: BaseException) -> bool:
    """Whether `exc` is the file's or the disk's own failure (an OSError with an errno), not
    what the file holds: pydicom raises bare OSErrors for malformed items too."""
    return isinstance(exc, OSError) and exc.errno is not None


def read_instance(fp: BinaryIO, bulk_data: BulkDataDefinition) -> InstanceRecord:
    """Parse the header of the Part 10 file open in `fp` (never the pixels); `bulk_data` says
    which elements become BulkDataURIs. Whatever fails in parsing what a client sent (an
    unknown VR such as ZZ makes pydicom raise NotImplementedError as it converts) is an
    IngestError; only the file's own I/O errors (`is_io_error`) pass as they are."""
    try:
        return _read_instance(fp, bulk_data)
    except Exception as exc:
        if isinstance(exc, IngestError) or is_io_error(exc):
            raise
        raise IngestError(f"not a readable DICOM Part 10 file: {type(exc).__name__}: "
                          f"{str(exc)[:200]}") from exc


def _read_instance(fp: BinaryIO, bulk_data: BulkDataDefinition) -> InstanceRecord:
    try:
        ds = dcmread(fp, stop_before_pixels=True, defer_size=DEFER_BYTES)
    except (InvalidDicomError, EOFError, struct.error, ValueError, KeyError, TypeError) as exc:
        raise IngestError(f"not a readable DICOM Part 10 file: {exc}") from exc
    pixel_start = fp.tell()
    uids = _required_uids(ds)
    study, series, sop, sop_class = uids
    ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if not is_valid_uid(ts):
        raise IngestError("missing or invalid TransferSyntaxUID in the file meta information",
                          sop_class, sop)
    walker = _JsonWalker(fp, bulk_data, fp.seek(0, 2), (sop_class, sop))
    attributes = walker.file_meta(ds.file_meta)
    attributes.update(walker.dataset(ds, "", 0))
    frames: tuple[tuple[Span, ...], ...] = ()
    pixel = _read_pixel_header(fp, pixel_start, ts)
    if pixel is not None:
        tag, vr, span, encapsulated = pixel
        key = f"{tag:08X}"
        attributes[key] = {"vr": vr, "BulkDataURI": key}
        if problem := _image_pixel_problem(ds, vr):
            raise IngestError(f"the Image Pixel module cannot describe the Pixel Data: "
                              f"{problem} (PS3.3 C.7.6.3)", sop_class, sop)
        n_frames = _int(ds, "NumberOfFrames", 1)
        if encapsulated:
            fragments = list(_fragments(fp, span.offset))
            end = fragments[-1].offset + fragments[-1].length if fragments else span.offset
            span = Span(span.offset, end - span.offset)  # up to the delimiter, as pydicom keeps it
            if n_frames > max(len(fragments), 1):
                raise IngestError(f"NumberOfFrames is {n_frames}, but the encapsulated Pixel "
                                  f"Data holds only {len(fragments)} fragments (each frame "
                                  "takes at least one, PS3.5 A.4)", sop_class, sop)
            frames = _group_fragments(fp, ds, span.offset, fragments, n_frames)
        else:
            needed = (n_frames * _frame_bits(ds) + 7) // 8  # bit-packed frames run on
            if span.length < needed:
                raise IngestError(f"NumberOfFrames is {n_frames}: {needed} bytes of pixels "
                                  f"at the declared Rows, Columns, samples and bits, but "
                                  f"Pixel Data holds {span.length}", sop_class, sop)
            frames = _native_frames(ds, span, n_frames)
        walker.within_file(key, span)
        walker.bulk[key] = span
    attributes = dict(sorted(attributes.items()))
    return InstanceRecord(study, series, sop, sop_class, ts, attributes,
                          orjson.dumps(attributes), walker.bulk, frames)


def _required_uids(ds: Dataset) -> tuple[str, str, str, str]:
    values = []
    sop_class = str(ds.get("SOPClassUID", "")).strip()
    sop = str(ds.get("SOPInstanceUID", "")).strip()
    for keyword in REQUIRED_UIDS.values():
        value = str(ds.get(keyword, "") or "").strip()
        if not value:
            raise IngestError(f"missing {keyword}", sop_class, sop)
        if not is_valid_uid(value):
            raise IngestError(f"invalid {keyword} {value[:80]!r}: a UID is digits and dots, "
                              "at most 64 characters", sop_class, sop)
        values.append(value)
    return values[0], values[1], values[2], values[3]


def _int(ds: Dataset, keyword: str, default: int) -> int:
    try:
        return int(ds.get(keyword, default) or default)
    except (TypeError, ValueError):
        return default


class _JsonWalker:
    """Builds DICOM JSON while recording the file span of every bulk data element."""

    def __init__(self, fp: BinaryIO, bulk_data: BulkDataDefinition, size: int,
                 identity: tuple[str, str]) -> None:
        self.fp = fp
        self.bulk_data = bulk_data
        self.size = size
        self.identity = identity
        self.bulk: dict[str, Span] = {}

    def within_file(self, path: str, span: Span) -> None:
        """IngestError unless the value at `span` lies inside the file (it is truncated)."""
        end = span.offset + span.length
        if end > self.size:
            raise IngestError(f"the value of {_named(path)} runs to byte {end}, past the "
                              f"end of the file at byte {self.size}: the file is truncated",
                              *self.identity)

    def file_meta(self, meta: Dataset) -> dict[str, Any]:
        return {f"{el.tag:08X}": _plain_json(el) for el in meta if el.tag.element}

    def dataset(self, ds: Dataset, prefix: str, base: int,
                charset: str = "") -> dict[str, Any]:
        """`base` is the file offset that this dataset's value positions are relative to;
        `charset` the Specific Character Set it inherits (PS3.5 6.1.2.5.2)."""
        if SPECIFIC_CHARACTER_SET in ds:
            own = ds.SpecificCharacterSet
            charset = own if isinstance(own, str) else "\\".join(own)
        encoding = ENCODINGS.get(charset.strip())
        out: dict[str, Any] = {}
        for tag in sorted(ds.keys()):
            if not tag & 0xFFFF:
                continue  # group lengths are not part of the JSON model (PS3.18 F.2)
            raw = ds.get_item(tag, keep_deferred=True)
            key = f"{tag:08X}"
            if isinstance(raw, RawDataElement):
                if raw.length != UNDEFINED_LENGTH:
                    self.within_file(prefix + key, Span(base + raw.value_tell, raw.length))
                vr = _raw_vr(raw, ds)
                # Bulk data is recognised before conversion: a large deferred value is never read.
                if self._bulk(raw, vr, prefix + key, base, out):
                    continue
                if encoding and isinstance(raw.value, bytes):
                    fast = raw_json(vr, raw.value, encoding, raw.is_little_endian)
                    if fast is not None:
                        out[key] = fast
                        continue
            elem = ds[tag]
            if elem.VR == "SQ":
                out[key] = self._sequence(raw, elem, prefix + key, base, charset)
            else:
                out[key] = _plain_json(elem, raw)
        return out

    def _sequence(self, raw: Any, elem: DataElement, path: str, base: int,
                  charset: str) -> dict[str, Any]:
        if path.count("/") >= 2 * MAX_SEQUENCE_DEPTH:  # each level adds /item/ to the path
            raise IngestError(f"sequences are nested more than {MAX_SEQUENCE_DEPTH} deep, at "
                              f"{_named(path.rsplit('/', 1)[-1])}", *self.identity)
        # Items of a defined-length sequence are parsed from its value bytes, so their
        # positions are relative to the sequence's value; undefined-length ones are not.
        if isinstance(raw, RawDataElement) and raw.length != UNDEFINED_LENGTH:
            base += raw.value_tell
        items = [self.dataset(item, f"{path}/{i}/", base, charset)
                 for i, item in enumerate(elem.value)]
        return {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}

    def _bulk(self, raw: RawDataElement, vr: str, path: str, base: int,
              out: dict[str, Any]) -> bool:
        """Record `raw` as bulk data if it is; nested spans are checked against the file
        when the value is at hand (else the value stays inline)."""
        if " or " in vr or raw.length in (0, UNDEFINED_LENGTH) \
                or not self.bulk_data.covers(vr, raw.length):
            return False
        span = Span(base + raw.value_tell, raw.length)
        if "/" in path and isinstance(raw.value, bytes):
            self.fp.seek(span.offset)
            if self.fp.read(span.length) != raw.value:
                return False
        self.bulk[path] = span
        out[path.rsplit("/", 1)[-1]] = {"vr": vr, "BulkDataURI": path}
        return True


def _named(path: str) -> str:
    """An attribute path with the keyword of its last tag: `PixelData (7FE00010)`."""
    keyword = keyword_for_tag(int(path.rsplit("/", 1)[-1], 16))
    return f"{keyword} ({path})" if keyword else f"({path})"


def _raw_vr(raw: RawDataElement, ds: Dataset) -> str:
    """The VR pydicom gives `raw` when it converts it (implicit VR: the dictionary's, private
    creators LO; an explicit UN of a known tag: the dictionary's), without reading the value."""
    found: dict[str, Any] = {}
    hooks.raw_element_vr(raw, found, ds=ds)
    return str(found["VR"])


def _plain_json(elem: DataElement, raw: Any = None) -> dict[str, Any]:
    try:
        return dict(elem.to_json_dict(None, UNDEFINED_LENGTH))
    except Exception:  # a value pydicom cannot model: keep its bytes rather than lose them
        value = raw.value if isinstance(raw, RawDataElement) else None
        if isinstance(value, bytes) and value:
            return {"vr": "UN", "InlineBinary": base64.b64encode(value).decode("ascii")}
        return {"vr": elem.VR}


def _read_pixel_header(fp: BinaryIO, pos: int, ts: str) -> tuple[int, str, Span, bool] | None:
    """Tag, VR and value span of the pixel data element starting at `pos` (PS3.5 7.1)."""
    syntax = syntax_of(ts)
    if syntax is not None and syntax.deflated:
        return None  # the body is compressed: there are no file offsets to record
    fp.seek(pos)
    head = fp.read(12)
    if len(head) < 8:
        return None
    endian = ">" if syntax is not None and syntax.big_endian else "<"
    group, element = struct.unpack(f"{endian}HH", head[:4])
    tag = group << 16 | element
    element = PIXEL_BY_TAG.get(tag)
    if element is None:
        return None
    if not (head[4:6].isalpha() and head[4:6].isupper()):  # implicit VR, whatever the TS says
        vr = element.implicit_vr
        (length,), header = struct.unpack(f"{endian}L", head[4:8]), 8
    else:
        vr = head[4:6].decode("ascii", "replace")
        if head[4:6] in _LONG_HEADER_VRS:
            (length,), header = struct.unpack(f"{endian}L", head[8:12]), 12
        else:
            (length,), header = struct.unpack(f"{endian}H", head[6:8]), 8
    encapsulated = length == UNDEFINED_LENGTH
    return tag, vr, Span(pos + header, 0 if encapsulated else length), encapsulated


def _fragments(fp: BinaryIO, start: int) -> Iterator[Span]:
    """Every item after the Basic Offset Table of encapsulated pixel data (PS3.5 A.4)."""
    pos, first = start, True
    while True:
        fp.seek(pos)
        head = fp.read(8)
        if len(head) < 8:
            raise IngestError("the encapsulated pixel data ends before its sequence delimiter: "
                              "the file is truncated")
        tag_group, tag_elem, length = struct.unpack("<HHL", head)
        tag = tag_group << 16 | tag_elem
        if tag == SEQUENCE_DELIMITER:
            return
        if tag != ITEM or length == UNDEFINED_LENGTH:
            raise IngestError(f"unexpected tag {tag:08X} in encapsulated pixel data")
        if not first:
            yield Span(pos + 8, length)
        first = False
        pos += 8 + length


def _group_fragments(fp: BinaryIO, ds: Dataset, value_start: int, fragments: list[Span],
                     n_frames: int) -> tuple[tuple[Span, ...], ...]:
    """Assign fragments to frames: offset tables, then counts, then frame start markers."""
    if not fragments:
        return ()
    if n_frames <= 1:
        return (tuple(fragments),)
    first_item = fragments[0].offset - 8
    starts = _offset_table(fp, ds, value_start)
    if starts:
        positions = {first_item + offset for offset in starts}
    elif len(fragments) == n_frames:
        return tuple((f,) for f in fragments)
    else:
        positions = set()
        for f in fragments:
            fp.seek(f.offset)
            if fp.read(6).startswith(_FRAME_START_MARKERS):
                positions.add(f.offset - 8)
    frames: list[list[Span]] = []
    for f in fragments:
        if f.offset - 8 in positions or not frames:
            frames.append([])
        frames[-1].append(f)
    return tuple(tuple(f) for f in frames) if len(frames) == n_frames else ()


def _offset_table(fp: BinaryIO, ds: Dataset, value_start: int) -> list[int]:
    """Frame offsets from the Basic Offset Table, or else the Extended Offset Table."""
    fp.seek(value_start)
    _tag, length = struct.unpack("<LL", fp.read(8))
    if length:
        return list(struct.unpack(f"<{length // 4}L", fp.read(length)))
    eot = ds.get(EXTENDED_OFFSET_TABLE)
    if eot is not None and isinstance(eot.value, bytes) and eot.value:
        return list(struct.unpack(f"<{len(eot.value) // 8}Q", eot.value))
    return []


def _image_pixel_problem(ds: Dataset, vr: str) -> str | None:
    """What makes the Image Pixel module unusable for decoding its Pixel Data, or None. Pixel
    Data without the module at all is kept as bulk data (it is never decoded)."""
    values = {keyword: ds.get(keyword) for keyword in
              ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "NumberOfFrames")}
    if all(values[keyword] is None for keyword in ("Rows", "Columns", "BitsAllocated")):
        return None
    counts = {keyword: _int(ds, keyword, 0) for keyword in values}
    for keyword in ("Rows", "Columns", "BitsAllocated"):
        if values[keyword] is None or counts[keyword] < 1:
            return f"{keyword} is {values[keyword]!r}"
    if counts["BitsAllocated"] not in BITS_ALLOCATED:
        return f"BitsAllocated is {counts['BitsAllocated']}, not one of {sorted(BITS_ALLOCATED)}"
    samples = counts["SamplesPerPixel"] if values["SamplesPerPixel"] is not None else 1
    if samples not in SAMPLES_PER_PIXEL:
        return f"SamplesPerPixel is {values['SamplesPerPixel']!r}"
    if values["NumberOfFrames"] is not None and counts["NumberOfFrames"] < 1:
        return f"NumberOfFrames is {values['NumberOfFrames']!r}"
    if vr not in PIXEL_VRS:
        return f"the pixel data element has VR {vr}"
    return None


def _frame_bits(ds: Dataset) -> int:
    """Bits in one native frame, from the Image Pixel module (0 when it is incomplete)."""
    return max(native_frame_bits(_int(ds, "Rows", 0), _int(ds, "Columns", 0),
                                 _int(ds, "SamplesPerPixel", 1), _int(ds, "BitsAllocated", 0),
                                 str(ds.get("PhotometricInterpretation", ""))), 0)


def _native_frames(ds: Dataset, span: Span, n_frames: int) -> tuple[tuple[Span, ...], ...]:
    """Native pixel data: frame i is a fixed-size slice of the value (PS3.5 8.1.1)."""
    bits = _frame_bits(ds)
    if bits <= 0 or bits % 8:
        return ((span,),) if n_frames == 1 else ()
    size = bits // 8
    count = min(n_frames, span.length // size)
    return tuple((Span(span.offset + i * size, size),) for i in range(count))
