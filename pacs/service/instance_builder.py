"""Part 10 instances from DICOM JSON metadata and bulk data parts (PS3.18 10.5.1.2.2-3).

The dataset is exactly what the client sent, plus the File Meta Information group (PS3.10
7.1); nothing else is invented. Pixel Data from a bulk part is native (octet-stream) or one
compressed frame whose media type and transfer syntax must match the instance's, and whose
decoded size must match the Image Pixel module.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from pacs.dicom.part10 import set_pixel_data, write_part10
from pacs.dicom.pixel_data import PIXEL_DATA
from pacs.dicom.tags import REQUIRED_UIDS, TRANSFER_SYNTAX_UID
from pacs.dicom.transfer_syntaxes import FRAME_SYNTAXES, OCTET_STREAM, TRANSFER_SYNTAXES
from pacs.dicom.uids import is_valid_uid
from pacs.pixels.codecs import CODECS
from pacs.pixels.description import PixelError, describe
from pacs.service.failures import CANNOT_UNDERSTAND, DATA_SET_DOES_NOT_MATCH, FailureReason

TRANSFER_SYNTAX = f"{TRANSFER_SYNTAX_UID:08X}"
BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
# Little endian syntaxes whose pixels we can check; big endian and deflated datasets are not
# built from metadata (the Cloud Healthcare API refuses them too).
BUILDABLE = frozenset(syntax.uid for syntax in TRANSFER_SYNTAXES.values()
                      if syntax.uid in CODECS and not syntax.big_endian and not syntax.deflated)


@dataclass(frozen=True)
class BulkPart:
    """A bulk data part: its media type, the transfer syntax it names, and its bytes."""

    media_type: str
    transfer_syntax: str | None
    data: bytes


class BuildError(ValueError):
    """Why an instance cannot be built; `reason` is its STOW FailureReason (PS3.4 B.2.3)."""

    def __init__(self, detail: str, reason: FailureReason = CANNOT_UNDERSTAND) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    """The UIDs a response item reports, read before anything else can fail."""

    sop_class_uid: str
    sop_uid: str


def identity(instance: Mapping[str, Any]) -> Identity:
    return Identity(_first(instance, "00080016"), _first(instance, "00080018"))


def bulk_references(dataset: Mapping[str, Any]) -> set[str]:
    """Every BulkDataURI in a DICOM JSON dataset, inside sequences too."""
    found: set[str] = set()
    for element in dataset.values():
        if not isinstance(element, dict):
            continue
        if isinstance(element.get("BulkDataURI"), str):
            found.add(element["BulkDataURI"])
        items = element.get("Value") if element.get("vr") == "SQ" else None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                found |= bulk_references(item)
    return found


def build_part10(instance: dict[str, Any], bulk: Mapping[str, BulkPart]) -> bytes:
    """The Part 10 bytes of one JSON instance; `bulk` holds the parts by Content-Location.
    BuildError says what is wrong, also when pydicom cannot take a value the client sent
    (an element that is not an object, a date that is a number, a VR it does not know)."""
    try:
        return _build(instance, bulk)
    except BuildError:
        raise
    except Exception as exc:
        raise BuildError(f"the metadata cannot be made a DICOM instance: "
                         f"{type(exc).__name__}: {str(exc)[:200]}") from exc


def _build(instance: dict[str, Any], bulk: Mapping[str, BulkPart]) -> bytes:
    _check_required(instance)
    syntax = _first(instance, TRANSFER_SYNTAX)
    metadata = {k: v for k, v in instance.items() if not k.startswith("0002")}
    pixel = metadata.pop(PIXEL_DATA.key, None)
    _check_character_set(metadata)
    ds = Dataset.from_json(metadata, bulk_data_uri_handler=_bulk_reader(bulk))
    if pixel is not None:
        _attach_pixels(ds, pixel, syntax, bulk)
    return write_part10(ds, syntax)


def _first(instance: Mapping[str, Any], key: str) -> str:
    """The element's first value as text; "" when it has none or is not DICOM JSON."""
    element = instance.get(key)
    values = element.get("Value") if isinstance(element, dict) else None
    return str(values[0]) if isinstance(values, list) and values and values[0] is not None \
        else ""


def _check_required(instance: Mapping[str, Any]) -> None:
    for key, keyword in REQUIRED_UIDS.items():
        value = _first(instance, key)
        if not is_valid_uid(value):
            raise BuildError(f"{keyword} ({key}) is missing or not a valid UID: {value!r}")
    syntax = _first(instance, TRANSFER_SYNTAX)
    if not syntax:
        raise BuildError("TransferSyntaxUID (00020010) is required in the metadata")
    if syntax not in BUILDABLE:
        raise BuildError(f"instances in transfer syntax {syntax} cannot be built from "
                         "metadata; use a little endian native or compressed syntax")


def _check_character_set(metadata: Mapping[str, Any]) -> None:
    """DICOM JSON is UTF-8 (PS3.18 F.2): text beyond ASCII needs SpecificCharacterSet
    ISO_IR 192 (which the server will not add on the client's behalf)."""
    charset = (metadata.get("00080005") or {}).get("Value") or []
    if "ISO_IR 192" in charset:
        return
    if any(not text.isascii() for text in _texts(metadata)):
        raise BuildError("the metadata has non-ASCII text but SpecificCharacterSet "
                         f"(00080005) is {charset or 'absent'}; JSON is UTF-8, so it must "
                         "be ISO_IR 192")


def _texts(metadata: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for element in metadata.values():
        for value in element.get("Value") or []:
            if isinstance(value, str):
                found.append(value)
            elif isinstance(value, dict) and element.get("vr") == "PN":
                found.extend(v for v in value.values() if isinstance(v, str))
            elif isinstance(value, dict):
                found.extend(_texts(value))
    return found


def _bulk_reader(bulk: Mapping[str, BulkPart]) -> Callable[[str, str, str], bytes]:
    """pydicom's BulkDataURI handler: the octet-stream part at that Content-Location."""
    def read(tag: str, vr: str, uri: str) -> bytes:
        if vr not in BULK_VRS:
            raise BuildError(f"{tag} has a BulkDataURI but VR {vr}; bulk data is for "
                             f"{', '.join(sorted(BULK_VRS))}")
        part = _take(bulk, uri, tag)
        if part.media_type != OCTET_STREAM:
            raise BuildError(f"{tag} is sent as {part.media_type}; only Pixel Data may be "
                             f"compressed, other bulk data is {OCTET_STREAM}")
        return part.data
    return read


def _take(bulk: Mapping[str, BulkPart], uri: str, tag: str) -> BulkPart:
    part = bulk.get(uri)
    if part is None:
        raise BuildError(f"{tag} refers to bulk data {uri!r}, but no part has that "
                         "Content-Location", DATA_SET_DOES_NOT_MATCH)
    return part


def _attach_pixels(ds: Dataset, pixel: dict[str, Any], syntax: str,
                   bulk: Mapping[str, BulkPart]) -> None:
    """Pixel Data from its bulk part, native or encapsulated as the syntax says, checked
    against the Image Pixel module."""
    if "InlineBinary" in pixel:
        raise BuildError("Pixel Data cannot be InlineBinary; send it as a bulk data part")
    uri = pixel.get("BulkDataURI")
    if not uri:
        raise BuildError("Pixel Data (7FE00010) has no BulkDataURI")
    part = _take(bulk, uri, PIXEL_DATA.key)
    try:
        desc = describe(ds)
    except PixelError as exc:
        raise BuildError(str(exc), DATA_SET_DOES_NOT_MATCH) from exc
    codec = CODECS[syntax]
    if not codec.encapsulated:
        if part.media_type != OCTET_STREAM:
            raise BuildError(f"the instance's transfer syntax {syntax} is native, but its "
                             f"Pixel Data part is {part.media_type}", DATA_SET_DOES_NOT_MATCH)
        expected = desc.frame_bytes * desc.frames
        if len(part.data) not in (expected, expected + expected % 2):
            raise BuildError(f"Pixel Data has {len(part.data)} bytes; Rows, Columns, Samples "
                             f"per Pixel, Bits Allocated and Number of Frames make {expected}",
                             DATA_SET_DOES_NOT_MATCH)
        set_pixel_data(ds, [part.data], encapsulated=False, bits_allocated=desc.bits_allocated)
        return
    _check_compressed(part, syntax, desc.frames)
    try:
        codec.decode(part.data, desc)  # the bitstream must decode to the described image
    except PixelError as exc:
        raise BuildError(f"the {part.media_type} Pixel Data does not match the Image Pixel "
                         f"module: {exc}", DATA_SET_DOES_NOT_MATCH) from exc
    set_pixel_data(ds, [part.data], encapsulated=True, bits_allocated=desc.bits_allocated)


def _check_compressed(part: BulkPart, syntax: str, frames: int) -> None:
    carried = FRAME_SYNTAXES.get(part.media_type, ())
    if syntax not in carried:
        raise BuildError(f"the instance's transfer syntax is {syntax}, but its Pixel Data "
                         f"part is {part.media_type}", DATA_SET_DOES_NOT_MATCH)
    if part.transfer_syntax not in (None, syntax):
        raise BuildError(f"the Pixel Data part says transfer-syntax={part.transfer_syntax}; "
                         f"the instance's TransferSyntaxUID is {syntax}",
                         DATA_SET_DOES_NOT_MATCH)
    if frames != 1:
        raise BuildError(f"Number of Frames is {frames}; one compressed bulk data part "
                         "carries one frame (send multi-frame images as Part 10)")
