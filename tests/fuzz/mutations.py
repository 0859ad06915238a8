"""Mutations of real Part 10 files for fuzzing ingest: bit flips, truncations, length and VR
mutations, splices, and semantic edits of the values an image is decoded by.

A small walker finds every element header (file meta, data set, inside sequences and
encapsulated Pixel Data), so that mutations hit the bytes a parser trusts: tags, VRs,
lengths and values. Every mutation takes a `random.Random` and is deterministic given it.
"""

import random
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

from pydicom.datadict import dictionary_VR

from tests.dataset_factories import corpus_path, ct_series

PREAMBLE_END = 132  # 128-byte preamble and "DICM" (PS3.10 7.1)
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
# VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2)
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                      b"UR", b"UT", b"UV"})
SHORT_VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS",
                       b"LO", b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL",
                       b"US"})
ODD_VRS = (b"ZZ", b"\0\0", b"ob", b"  ", b"\xff\xff", b"OX", b"S ")
IMPLICIT_LE, EXPLICIT_BE, DEFLATED = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2", \
    "1.2.840.10008.1.2.1.99"

# pydicom test files, small enough to send thousands of times: every transfer syntax the
# archive reads, sequences, private and UN elements, odd lengths and encodings.
SOURCES = (
    "CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
    "rtdose.dcm", "rtdose_1frame.dcm", "MR_small_RLE.dcm", "SC_rgb_rle_2frame.dcm",
    "SC_rgb_rle_16bit.dcm", "SC_rgb_rle_32bit_2frame.dcm", "JPEG2000.dcm",
    "JPEG2000-embedded-sequence-delimiter.dcm", "MR_small_jpeg_ls_lossless.dcm",
    "JPEGLSNearLossless_16.dcm", "JPEG-lossy.dcm", "SC_rgb_jpeg.dcm", "SC_rgb_small_odd.dcm",
    "SC_ybr_full_422_uncompressed.dcm", "liver_1frame.dcm", "rtplan.dcm", "reportsi.dcm",
    "reportsi_with_empty_number_tags.dcm", "image_dfl.dcm", "ExplVR_BigEnd.dcm",
    "nested_priv_SQ.dcm", "UN_sequence.dcm", "badVR.dcm", "test-SR.dcm",
)


@dataclass(frozen=True)
class Element:
    """Where one element's header and value lie in a file."""

    tag: int
    offset: int  # of the tag
    vr: bytes | None  # None: implicit VR (or an item / delimiter)
    length_offset: int
    length_size: int  # 2 or 4 bytes
    length: int  # as encoded; UNDEFINED for undefined length
    value_offset: int
    little: bool
    depth: int

    @property
    def end(self) -> int:
        """Where the value ends (the header's end for undefined length)."""
        return self.value_offset + (0 if self.length == UNDEFINED else self.length)


def transfer_syntax(data: bytes) -> str:
    """The (0002,0010) value of a Part 10 file, or '' if none can be found."""
    for element in _walk(data, PREAMBLE_END, _meta_end(data), True, True, 0):
        if element.tag == 0x00020010:
            raw = data[element.value_offset:element.end]
            return raw.rstrip(b"\0 ").decode("ascii", "replace")
    return ""


def elements(data: bytes) -> list[Element]:
    """Every element header of a Part 10 file, in file order; walking stops quietly where
    the bytes stop making sense (the file may already be mutated)."""
    if data[128:PREAMBLE_END] != b"DICM":
        return []
    meta_end = _meta_end(data)
    found = list(_walk(data, PREAMBLE_END, meta_end, True, True, 0))
    syntax = transfer_syntax(data)
    if syntax == DEFLATED:
        return found
    explicit, little = syntax != IMPLICIT_LE, syntax != EXPLICIT_BE
    if data[meta_end + 4:meta_end + 6] not in SHORT_VRS | LONG_VRS:
        explicit = False  # written implicit whatever the syntax says (as SC_rgb_jpeg.dcm is)
    found.extend(_walk(data, meta_end, len(data), explicit, little, 0))
    return found


def _meta_end(data: bytes) -> int:
    """Where the (0002,xxxx) group starting at byte 132 ends."""
    position = PREAMBLE_END
    while position + 8 <= len(data) and data[position:position + 2] == b"\x02\x00":
        vr = data[position + 4:position + 6]
        if vr in LONG_VRS:
            if position + 12 > len(data):
                break
            position += 12 + struct.unpack_from("<L", data, position + 8)[0]
        else:
            position += 8 + struct.unpack_from("<H", data, position + 6)[0]
    return min(position, len(data))


def _walk(data: bytes, position: int, end: int, explicit: bool, little: bool,
          depth: int, fragments: bool = False) -> Iterator[Element]:
    """Elements from `position` to `end` (or to the delimiter that closes this level); with
    `fragments`, the items of encapsulated Pixel Data, whose contents are not elements."""
    order = "<" if little else ">"
    count = 0
    while position + 8 <= end and count < 20_000 and depth < 64:
        count += 1
        group, number = struct.unpack_from(order + "HH", data, position)
        tag = group << 16 | number
        if group == 0xFFFE:  # items and delimiters: tag and a 4-byte length, never a VR
            length = struct.unpack_from(order + "L", data, position + 4)[0]
            yield Element(tag, position, None, position + 4, 4, length, position + 8, little,
                          depth)
            if tag in (ITEM_END, SEQUENCE_END):
                return
            if fragments:
                position += 8 + (0 if length == UNDEFINED else length)
            elif length == UNDEFINED:
                inner = list(_walk(data, position + 8, end, explicit, little, depth + 1))
                yield from inner
                position = inner[-1].end if inner else end
            else:
                yield from _walk(data, position + 8, min(position + 8 + length, end),
                                 explicit, little, depth + 1)
                position += 8 + length
            continue
        vr: bytes | None = None
        if explicit:
            vr = data[position + 4:position + 6]
            if vr in LONG_VRS or vr not in SHORT_VRS:
                if position + 12 > end:
                    return
                length_offset, size, header = position + 8, 4, 12
            else:
                length_offset, size, header = position + 6, 2, 8
        else:
            length_offset, size, header = position + 4, 4, 8
        length = struct.unpack_from(order + ("L" if size == 4 else "H"), data, length_offset)[0]
        element = Element(tag, position, vr, length_offset, size, length, position + header,
                          little, depth)
        yield element
        if length == UNDEFINED or _is_sequence(tag, vr):
            stop = end if length == UNDEFINED else min(element.end, end)
            encapsulated = length == UNDEFINED and not _is_sequence(tag, vr) and vr != b"UN"
            inner = list(_walk(data, element.value_offset, stop, explicit and vr != b"UN",
                               little, depth + 1, encapsulated))
            yield from inner
            position = inner[-1].end if length == UNDEFINED and inner else element.end
        else:
            position = element.end


def _name(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _is_sequence(tag: int, vr: bytes | None) -> bool:
    if vr is not None:
        return vr == b"SQ"
    try:
        return bool(dictionary_VR(tag) == "SQ")
    except KeyError:
        return False


# -- mutations -----------------------------------------------------------------------------

Mutation = Callable[[random.Random, bytes], tuple[bytes, str]]


def _pick(rng: random.Random, data: bytes, where: Callable[[Element], bool] = lambda e: True
          ) -> Element | None:
    candidates = [e for e in elements(data) if where(e)]
    return rng.choice(candidates) if candidates else None


def flip_bits(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """1 to 8 random bits flipped, anywhere past the preamble."""
    out = bytearray(data)
    flips = rng.randint(1, 8)
    for _ in range(flips):
        at = rng.randrange(128, len(out)) if len(out) > 128 else rng.randrange(len(out) or 1)
        if out:
            out[at] ^= 1 << rng.randrange(8)
    return bytes(out), f"{flips} bit flip(s)"


def flip_header_bits(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """A bit flipped inside an element header (tag, VR or length)."""
    element = _pick(rng, data)
    if element is None:
        return flip_bits(rng, data)
    at = rng.randrange(element.offset, element.value_offset)
    out = bytearray(data)
    out[at] ^= 1 << rng.randrange(8)
    return bytes(out), f"bit flip in the header of {_name(element.tag)}"


def truncate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Cut at a random byte, or just around an element boundary."""
    element = _pick(rng, data)
    if element is None or rng.random() < 0.3:
        at = rng.randrange(len(data) + 1)
    else:
        at = rng.choice([element.offset, element.value_offset, element.end]) + rng.randint(-2, 2)
        at = max(0, min(at, len(data)))
    return data[:at], f"truncated to {at} of {len(data)} bytes"


def mutate_length(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """An element's length field set to a lie: 0, undefined, odd, off by a little, huge."""
    element = _pick(rng, data)
    if element is None:
        return flip_bits(rng, data)
    limit = 0xFFFF if element.length_size == 2 else 0xFFFFFFFF
    length = element.length if element.length != UNDEFINED else 0
    value = rng.choice([0, 1, limit, limit - 1, length + 1, max(length - 1, 0), length * 2,
                        length + 2, len(data), len(data) - element.value_offset + 2,
                        rng.randrange(limit + 1), 0x7FFFFFFF & limit, length | 1])
    value = min(value, limit)
    out = bytearray(data)
    fmt = ("<" if element.little else ">") + ("H" if element.length_size == 2 else "L")
    struct.pack_into(fmt, out, element.length_offset, value)
    return bytes(out), (f"length of ({element.tag >> 16:04X},{element.tag & 0xFFFF:04X}) "
                        f"{element.length} -> {value}")


def mutate_vr(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """An explicit VR replaced by another VR (short for long and back) or by a made-up one."""
    element = _pick(rng, data, lambda e: e.vr is not None)
    if element is None or element.vr is None:
        return flip_bits(rng, data)
    new = rng.choice([*sorted(SHORT_VRS | LONG_VRS), *ODD_VRS])
    out = bytearray(data)
    out[element.offset + 4:element.offset + 6] = new
    return bytes(out), (f"VR of ({element.tag >> 16:04X},{element.tag & 0xFFFF:04X}) "
                        f"{element.vr!r} -> {new!r}")


def mutate_tag(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """An element's tag replaced: out of order, an item or delimiter tag, a meta or command
    group tag in the data set, a private tag."""
    element = _pick(rng, data)
    if element is None:
        return flip_bits(rng, data)
    tag = rng.choice([0x00000000, 0x00020010, 0x00080018, ITEM, ITEM_END, SEQUENCE_END,
                      PIXEL_DATA, 0x7FE00008, 0x00090010, 0x00091010, 0xFFFFFFFF, 0x00280010,
                      rng.randrange(1 << 32), element.tag + 1, element.tag - 1])
    out = bytearray(data)
    fmt = "<HH" if element.little else ">HH"
    struct.pack_into(fmt, out, element.offset, tag >> 16, tag & 0xFFFF)
    return bytes(out), (f"tag ({element.tag >> 16:04X},{element.tag & 0xFFFF:04X}) -> "
                        f"({tag >> 16:04X},{tag & 0xFFFF:04X})")


def cut_element(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """One element (header and value) removed, or duplicated in place."""
    element = _pick(rng, data, lambda e: e.length != UNDEFINED and e.end <= len(data))
    if element is None:
        return truncate(rng, data)
    piece = data[element.offset:element.end]
    name = f"({element.tag >> 16:04X},{element.tag & 0xFFFF:04X})"
    if rng.random() < 0.5:
        return data[:element.offset] + data[element.end:], f"removed {name}"
    return data[:element.end] + piece + data[element.end:], f"duplicated {name}"


def insert_bytes(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Random or meaningful bytes inserted at an element boundary or anywhere."""
    element = _pick(rng, data)
    at = element.offset if element is not None and rng.random() < 0.7 else \
        rng.randrange(len(data) + 1)
    junk = rng.choice([b"\0" * rng.randint(1, 9), bytes(rng.randrange(256) for _ in range(7)),
                       b"\xfe\xff\x00\xe0\xff\xff\xff\xff", b"\xfe\xff\xdd\xe0\x00\x00\x00\x00",
                       b"\x08\x00\x18\x00UI\x04\x001.2\0",
                       b"\xe0\x7f\x10\x00OB\0\0\xff\xff\xff\xff", b"DICM", b"\xff" * 4])
    return data[:at] + junk + data[at:], f"{len(junk)} bytes inserted at {at}"


def splice(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """This file's head up to an element boundary, another file's tail from one."""
    name = rng.choice(SOURCES)
    other = source_bytes(name)
    mine, theirs = _pick(rng, data), _pick(rng, other)
    cut = mine.offset if mine is not None else rng.randrange(len(data) + 1)
    join = theirs.offset if theirs is not None else rng.randrange(len(other) + 1)
    return data[:cut] + other[join:], f"spliced at {cut} with {name} from {join}"


def set_value(data: bytes, element: Element, value: bytes) -> bytes:
    """`element`'s value replaced by `value` (padded to even length), its length field
    fixed, and the File Meta group length too when the element is in group 2."""
    if len(value) % 2:
        value += b"\0" if element.vr in (b"UI", b"OB", None) else b" "
    if element.length_size == 2 and len(value) > 0xFFFF:
        value = value[:0xFFFE]
    order = "<" if element.little else ">"
    length = struct.pack(order + ("H" if element.length_size == 2 else "L"), len(value))
    out = data[:element.length_offset] + length + value + data[element.end:]
    if element.tag >> 16 == 0x0002:
        out = _fix_meta_length(out)
    return out


def _fix_meta_length(data: bytes) -> bytes:
    start = PREAMBLE_END
    if data[start:start + 4] != b"\x02\x00\x00\x00":
        return data
    first = start + 12  # (0002,0000) UL 4: the group length counts what follows it
    return data[:start + 8] + struct.pack("<L", _meta_end(data) - first) + data[first:]


def _number(element: Element, fmt: str, value: int | float) -> bytes:
    return struct.pack(("<" if element.little else ">") + fmt, value)


# What images are decoded and rendered by, with values that lie about the pixels.
_SEMANTIC: dict[int, list[object]] = {
    0x00280002: [0, 2, 3, 4, 0xFFFF],  # SamplesPerPixel
    0x00280004: ["MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422",
                 "PALETTE COLOR", "YBR_ICT", "HSV", "", "garbage"],  # Photometric
    0x00280006: [0, 1, 2, 0xFFFF],  # PlanarConfiguration
    0x00280008: ["0", "-1", "2", "3", "abc", "1.5", "99999999999", " ", "1\\2"],  # Frames
    0x00280010: [0, 1, 2, 3, 0xFFFF],  # Rows
    0x00280011: [0, 1, 2, 3, 0xFFFF],  # Columns
    0x00280100: [0, 1, 7, 8, 12, 16, 24, 32, 64, 0xFFFF],  # BitsAllocated
    0x00280101: [0, 1, 7, 8, 12, 16, 17, 32, 64],  # BitsStored
    0x00280102: [0, 7, 11, 15, 31, 40, 0xFFFF],  # HighBit
    0x00280103: [0, 1, 2, 0xFFFF],  # PixelRepresentation
    0x00281050: ["abc", "0", "-1", "nan", "inf", "1e400", "1\\2\\3", "", "-1e308"],  # WC
    0x00281051: ["abc", "0", "-1", "nan", "inf", "1e-300", "1\\2", "", "0.0000001"],  # WW
    0x00281052: ["nan", "inf", "0", "1e308", "abc", "-1e308"],  # RescaleIntercept
    0x00281053: ["nan", "inf", "0", "1e308", "abc", "-1e-320"],  # RescaleSlope
    0x00281056: ["SIGMOID", "LINEAR_EXACT", "bogus", ""],  # VOILUTFunction
    0x00020010: ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
                 "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5",
                 "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.201", "1.2.3", "", "x.y"],
    0x00080005: ["ISO 2022 IR 87", "bogus", "ISO_IR 192", "ISO_IR 100\\ISO 2022 IR 149",
                 "GB18030", "ISO_IR 13"],  # SpecificCharacterSet
    0x00100010: ["\udcff", "Ém^Ö", "\x00\x01", "A" * 400, "a\\b\\c", "=^^=="],  # PatientName
    0x00080020: ["20241301", "abc", "2024", "99999999", ""],  # StudyDate
    0x00200013: ["abc", "99999999999999", "-1", ""],  # InstanceNumber
    0x00280030: ["abc", "0\\0", "nan\\inf", "1"],  # PixelSpacing
    0x00281101: [b"\x00\x00\x00\x00\x10\x00", b"\xff\xff\x00\x00\x08\x00", b"\x01"],  # LUT desc
}
_US = {0x00280002, 0x00280006, 0x00280010, 0x00280011, 0x00280100, 0x00280101, 0x00280102,
       0x00280103}


def semantic(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """An attribute images are decoded or rendered by set to a value that lies (still
    parseable, so the instance may be stored and then retrieved, framed and rendered)."""
    present = {e.tag: e for e in elements(data) if e.depth == 0 and e.tag in _SEMANTIC}
    if not present:
        return flip_bits(rng, data)
    tag = rng.choice(sorted(present))
    element = present[tag]
    choice = rng.choice(_SEMANTIC[tag])
    if isinstance(choice, bytes):
        raw = choice
    elif isinstance(choice, int):
        raw = _number(element, "H", choice) if tag in _US else str(choice).encode()
    else:
        raw = str(choice).encode("utf-8", "surrogateescape")
    return set_value(data, element, raw), \
        f"({tag >> 16:04X},{tag & 0xFFFF:04X}) set to {choice!r}"[:120]


def new_uid(rng: random.Random) -> str:
    """A UID drawn from `rng` (PS3.5 B.2: 2.25 and a 128-bit integer), so that a mutant is
    the same bytes whenever `rng` is in the same state."""
    return f"2.25.{rng.getrandbits(128) | 1 << 127}"


def new_uids(rng: random.Random, data: bytes) -> bytes:
    """The data set's Study, Series and SOP Instance UIDs replaced by new ones (so that a
    mutation of a stored file can be stored too, not refused as a conflict)."""
    for tag in (0x0020000D, 0x0020000E, 0x00080018):
        element = next((e for e in elements(data) if e.tag == tag and e.depth == 0), None)
        if element is not None:
            data = set_value(data, element, new_uid(rng).encode())
    return data


MUTATIONS: tuple[Mutation, ...] = (flip_bits, flip_header_bits, truncate, mutate_length,
                                   mutate_vr, mutate_tag, cut_element, insert_bytes, splice,
                                   semantic, semantic)


@cache
def source_bytes(name: str) -> bytes:
    """A mutation source: a pydicom test file, or 'generated' (an 8x8 CT)."""
    if name == "generated":
        return ct_series(1, size=8, patient="FUZZ^SOURCE")[0]
    return corpus_path(name).read_bytes()


def mutated(rng: random.Random, data: bytes, count: int | None = None,
            fresh_uids: bool | None = None) -> tuple[bytes, list[str]]:
    """`data` with `count` (1 to 3) random mutations; with `fresh_uids` (by chance when
    None) new UIDs first, so that a mutation that still parses is stored."""
    notes = []
    if fresh_uids if fresh_uids is not None else rng.random() < 0.5:
        data = new_uids(rng, data)
        notes.append("new UIDs")
    for _ in range(count or rng.choice((1, 1, 1, 2, 3))):
        data, note = rng.choice(MUTATIONS)(rng, data)
        notes.append(note)
    return data, notes
